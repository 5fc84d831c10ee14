"""The switches a training run flips on a zoo model: activation, batch norm, dropout, init.

The zoo builds each architecture as published (LeNet-5 with tanh, no batch norm, no dropout);
a lesson changes one thing and compares. These functions edit a built model in place by
replacing modules, so every variant keeps the zoo's layer order, and a checkpoint is rebuilt by
applying the same edits to a fresh model.

- Batch normalisation: Ioffe & Szegedy (2015), "Batch normalization: accelerating deep network
  training by reducing internal covariate shift" — after a conv or hidden linear layer, before
  its activation, as in the paper.
- Dropout: Srivastava et al. (2014), "Dropout: a simple way to prevent neural networks from
  overfitting" — on the inputs of the fully connected layers (never on raw pixels).
- Initialisation: Glorot & Bengio (2010) "Understanding the difficulty of training deep
  feedforward neural networks" (Xavier); He et al. (2015) "Delving deep into rectifiers" (He);
  a constant zero start leaves every unit of a layer identical forever (the symmetry problem).
"""

from __future__ import annotations

import torch
from torch import nn

from cnncore.activations import ACTIVATIONS, activation_module
from cnncore.errors import CNNCoreError
from cnncore.models import get_model, get_model_info
from cnncore.uploaded_transfer import as_classifier

__all__ = [
    "INITS",
    "MAX_WIDTH",
    "WIDTH_MODELS",
    "add_batch_norm",
    "add_dropout",
    "build_classifier",
    "check_width",
    "fit_input_size",
    "initialise_weights",
    "replace_activations",
]

INITS = ("default", "xavier", "he", "normal", "zeros")
_ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                     nn.ReLU6, nn.Hardswish, nn.Softplus)  # fmt: skip
_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
# zoo models whose factory takes `channels`, the width of every convolution (CNN Explainer's
# TinyVGG has 10); a run records it as `width` so that its checkpoints rebuild the same network
WIDTH_MODELS = ("tinyvgg",)
MAX_WIDTH = 64


def _replace(model: nn.Module, pick, make) -> int:
    """Swap every submodule for which `pick(module)` holds by `make(module)`; count the swaps."""
    targets = [(parent, name, child)
               for parent in model.modules()
               for name, child in parent.named_children() if pick(child)]  # fmt: skip
    for parent, name, child in targets:
        setattr(parent, name, make(child))
    return len(targets)


def replace_activations(model: nn.Module, activation: str) -> int:
    """Use `activation` wherever the model has an activation module (sigmoid vs ReLU lesson)."""
    if activation not in ACTIVATIONS:
        raise CNNCoreError(
            f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}",
            "activation",
        )
    return _replace(model, lambda m: isinstance(m, _ACTIVATION_TYPES),
                    lambda m: activation_module(activation))  # fmt: skip


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def add_batch_norm(model: nn.Module) -> int:
    """conv → (conv, BatchNorm2d); every linear layer but the output → (linear, BatchNorm1d)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return 0  # already normalised (ResNet, MobileNet): nothing to add
    output_layer = _linears(model)[-1:] or [None]
    count = _replace(
        model,
        lambda m: isinstance(m, nn.Conv2d) and not isinstance(m, nn.ConvTranspose2d),
        lambda m: nn.Sequential(m, nn.BatchNorm2d(m.out_channels)),
    )
    return count + _replace(
        model,
        lambda m: isinstance(m, nn.Linear) and m is not output_layer[0],
        lambda m: nn.Sequential(m, nn.BatchNorm1d(m.out_features)),
    )


def add_dropout(model: nn.Module, p: float) -> int:
    """Set every Dropout to `p`, or put Dropout(p) before each fully connected layer that
    reads features (not the one reading raw pixels in a model without convolutions)."""
    if not 0.0 <= p < 1.0:
        raise CNNCoreError("dropout must be at least 0 and below 1", "dropout")
    existing = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for module in existing:
        module.p = p
    if existing or p == 0.0:
        return len(existing)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    first = None if has_conv else (_linears(model)[:1] or [None])[0]
    return _replace(model, lambda m: isinstance(m, nn.Linear) and m is not first,
                    lambda m: nn.Sequential(nn.Dropout(p), m))  # fmt: skip


@torch.no_grad()
def initialise_weights(model: nn.Module, scheme: str, std: float = 0.01) -> None:
    """Re-draw conv and linear weights (biases set to 0) with `scheme`; "default" keeps
    PyTorch's own (Kaiming-uniform with a = √5, from each layer's `reset_parameters`)."""
    if scheme not in INITS:
        raise CNNCoreError(f"unknown init {scheme!r}; choose from {', '.join(INITS)}", "init")
    if scheme == "default":
        return
    if scheme == "normal" and not 0.0 < std <= 10.0:
        raise CNNCoreError("init_std must be above 0 and at most 10", "init_std")
    for module in model.modules():
        if not isinstance(module, _WEIGHTED):
            continue
        weight = module.weight
        if scheme == "xavier":
            nn.init.xavier_uniform_(weight)
        elif scheme == "he":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        elif scheme == "normal":
            nn.init.normal_(weight, 0.0, std)
        else:
            nn.init.zeros_(weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def check_width(model: str, width: int | None) -> None:
    """Refuse a width for a model built without that option, or outside 1…MAX_WIDTH."""
    if width is None:
        return
    if model not in WIDTH_MODELS:
        raise CNNCoreError(f"{model} has no width option; only {', '.join(WIDTH_MODELS)} has",
                           "width")  # fmt: skip
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise CNNCoreError(f"width must be a whole number from 1 to {MAX_WIDTH}", "width")


def fit_input_size(model: str, channels: int, size: int) -> int:
    """The smallest square side ≥ `size` the model accepts (LeNet-5 needs 32, TinyVGG 16…).

    Tried on the meta device: building allocates nothing, so the search costs microseconds.
    """
    info = get_model_info(model)
    if not info.sized_by_input:
        return size
    for side in range(size, max(size, info.default_input.height) + 1):
        try:
            with torch.device("meta"):
                get_model(model, in_channels=channels, input_size=(side, side))
            return side
        except CNNCoreError:
            continue
    raise CNNCoreError(f"{model} does not accept {size}×{size} inputs", "image_size")


def build_classifier(
    model: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    activation: str | None = None,
    batch_norm: bool = False,
    dropout: float = 0.0,
    init: str = "default",
    init_std: float = 0.01,
    width: int | None = None,
) -> nn.Module:
    """A zoo model sized for the data, with the run's switches applied (in this order).
    `width`: the channels of every convolution in a model built with that option (TinyVGG's
    `channels`, `WIDTH_MODELS`); None keeps the zoo's own."""
    channels, height, width_px = input_shape
    check_width(model, width)
    if get_model_info(model).uploaded is not None:  # a user's own network, as a classifier
        net = as_classifier(get_model(model, in_channels=channels), num_classes)
    else:
        size = {"channels": width} if width is not None else {}
        net = get_model(model, in_channels=channels, num_classes=num_classes,
                        input_size=(height, width_px), **size)  # fmt: skip
    if activation is not None:
        replace_activations(net, activation)
    if batch_norm:
        add_batch_norm(net)
    add_dropout(net, dropout)
    initialise_weights(net, init, init_std)
    return net
