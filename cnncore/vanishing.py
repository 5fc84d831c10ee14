"""The vanishing-gradient experiment: how much gradient reaches each layer of a deep stack.

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks"
(AISTATS 2010) measured, at initialisation, the gradients of every layer of a deep sigmoid/tanh
network shrinking towards the input. Backpropagation multiplies the gradient by Wᵀ·diag(f'(z))
per layer, and a sigmoid's f' is at most 1/4, so it decays geometrically with depth; ReLU's f'
is 0 or 1 and He et al. ("Delving Deep into Rectifiers", ICCV 2015) chose the weight scale that
keeps its gradients level. Batch normalisation (Ioffe & Szegedy, ICML 2015) rescales every
layer's input and largely removes the dependence on depth.

Here: a fully connected stack on scikit-learn's 8×8 digits, one forward and one backward pass of
the cross-entropy loss on a seeded batch, and the gradient norm of every layer's weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.activations import activation_module
from cnncore.data import DataConfig, load_images
from cnncore.errors import CNNCoreError
from cnncore.seeding import seeded

__all__ = ["INITS", "DeepStack", "LayerGradient", "VanishingReport", "vanishing_gradients"]

INITS = ("default", "xavier", "kaiming")


class Block(nn.Module):
    """Linear → (batch norm) → activation: one hidden layer."""

    def __init__(self, in_features: int, width: int, activation: nn.Module, batch_norm: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, width)
        self.norm = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.linear(x)))


class DeepStack(nn.Module):
    """`depth` hidden blocks of `width` units, then a linear classifier."""

    def __init__(self, depth: int, width: int, activation: str, *, batch_norm: bool = False,
                 in_features: int = 64, num_classes: int = 10, slope: float = 0.01,
                 alpha: float = 1.0):
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.blocks = nn.Sequential(*(
            Block(n_in, width, activation_module(activation, slope, alpha), batch_norm)
            for n_in in sizes[:-1]
        ))
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(x))


def _initialise(model: DeepStack, init: str, activation: str) -> None:
    """`default` keeps torch's U(±1/√fan_in) weights; the others follow their papers.

    torch's default scale shrinks a ReLU stack's signal by √6 per layer in both directions, so
    its gradients vanish too; He's scale is the one that keeps them level, which is why it is the
    experiment's default: then only the activation's derivative decides.
    """
    if init == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if init == "xavier":  # Glorot & Bengio 2010, eq. 16, with the activation's gain
                gain = nn.init.calculate_gain(
                    activation if activation in ("sigmoid", "tanh", "relu") else "linear"
                )
                nn.init.xavier_uniform_(module.weight, gain=gain)
            else:  # He et al. 2015: Var(w) = 2 / fan_in
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class LayerGradient:
    name: str  # dotted module path, e.g. "blocks.0.linear"
    grad_norm: float  # ‖∂loss/∂W‖ (Frobenius)
    weight_norm: float  # ‖W‖


@dataclass(frozen=True)
class VanishingReport:
    activation: str
    depth: int
    width: int
    batch_norm: bool
    init: str
    seed: int
    batch_size: int
    loss: float
    layers: list[LayerGradient]  # input side first


def vanishing_gradients(
    activation: str = "sigmoid",
    depth: int = 10,
    *,
    width: int = 32,
    batch_norm: bool = False,
    init: str = "kaiming",
    seed: int = 0,
    batch_size: int = 256,
    slope: float = 0.01,
    alpha: float = 1.0,
) -> VanishingReport:
    """Gradient norm of every layer's weight after one backward pass at initialisation.

    The model's weights and the batch (drawn from the 1,797 digits, standardised) are fixed by
    `seed`; the global random state is left untouched. float64, so that a collapsing gradient
    is measured rather than rounded to zero.
    """
    for value, field, high in ((depth, "depth", 1000), (width, "width", 4096),
                               (batch_size, "batch_size", 1797)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise CNNCoreError(f"{field} must be an integer from 1 to {high}, got {value!r}",
                               field, code="integer_between", ctx={"ge": 1, "le": high})
    if init not in INITS:
        raise CNNCoreError(f"init must be one of {', '.join(INITS)}, got {init!r}", "init",
                           code="enum", ctx={"expected": list(INITS)})
    try:
        activation_module(activation, slope, alpha)
    except CNNCoreError as exc:
        field = "activation" if exc.field == "name" else exc.field
        raise CNNCoreError(str(exc), field, code=exc.code, ctx=exc.ctx) from exc

    images, labels, _ = load_images(DataConfig(name="digits"))
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=generator)[:batch_size]
    pixels = images.flatten(1).to(torch.float64)
    inputs = (pixels[chosen] - pixels.mean()) / pixels.std()
    with seeded(seed):
        model = DeepStack(depth, width, activation, batch_norm=batch_norm, slope=slope,
                          alpha=alpha).to(torch.float64)
        _initialise(model, init, activation)
    model.train()  # batch norm normalises with the batch's own statistics, as in training
    loss = F.cross_entropy(model(inputs), labels[chosen])
    loss.backward()
    layers = [
        LayerGradient(name, float(module.weight.grad.norm()), float(module.weight.detach().norm()))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    return VanishingReport(activation, depth, width, batch_norm, init, seed, batch_size,
                           loss.item(), layers)
