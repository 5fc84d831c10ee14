"""A model a user uploaded, known to the zoo's registry by its name (`onnx_<id>`).

Everything that builds a zoo model by name (`get_model`, `build_model`, `load_pretrained`)
builds an uploaded one the same way once `register_uploaded_model` has run: the factory gives a
fresh copy of the converted module (`cnncore.onnx_import`), on the meta device when the caller
builds there (summaries), so a caller may change its copy (a transfer-learning head) freely.
`load_uploaded` (the trained model a cache keeps for reading: /features, receptive fields) gives
the converted module itself instead, in eval mode: a module of tens of millions of values is then
held once, by the store that converted it, not once there and once more in a copy.
Its weights are the file's own; its input is the one the file fixes, prepared with ImageNet's
statistics for colour inputs and 0.5 / 0.5 for the others, as the zoo's initialised models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.models import (
    InputShape,
    ModelInfo,
    UnknownModelError,
    build_model,
    get_model_info,
    register_uploaded,
)
from cnncore.weights import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, WeightsInfo

__all__ = [
    "UPLOADED_PREFIX",
    "UploadedSpec",
    "forget_uploaded_model",
    "load_uploaded",
    "register_uploaded_model",
    "state_dict_network",
    "uploaded_weights",
]

UPLOADED_PREFIX = "onnx_"
# name → the store's accessor of the converted module (`register_uploaded_model`)
_MODULE_OF: dict[str, Callable[[], nn.Module]] = {}


@dataclass(frozen=True)
class UploadedSpec:
    """What is known of an uploaded model without converting it (its stored description)."""

    name: str  # onnx_<id>: the model name every route takes
    title: str  # the name its owner gave it
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]
    labels: tuple[str, ...] | None

    @property
    def num_classes(self) -> int | None:
        """Outputs of a classifier (a 1-D output), None for anything else."""
        return self.output_shape[0] if len(self.output_shape) == 1 else None


def uploaded_weights(spec: UploadedSpec) -> WeightsInfo:
    channels, height, _ = spec.input_shape
    colour = channels == 3
    return WeightsInfo(
        source="uploaded",
        input_shape=spec.input_shape,
        mean=IMAGENET_MEAN if colour else (0.5,) * channels,
        std=IMAGENET_STD if colour else (0.5,) * channels,
        resize_ratio=256 / 224 if height >= 224 else 1.0,
        labels=spec.labels if spec.labels and len(spec.labels) == spec.num_classes else None,
        file=spec.title[:80],
    )


def _fixed(value: int | None, fixed: int | None, field: str) -> None:
    if value is not None and fixed is not None and value != fixed:
        raise CNNCoreError(
            f"an uploaded model's {field} are fixed by its file ({fixed}), not {value}",
            field,
            code="uploaded_fixed",
            ctx={"count": fixed},
        )


def register_uploaded_model(spec: UploadedSpec, module_of: Callable[[], nn.Module]) -> None:
    """Make `spec.name` buildable like a zoo model; `module_of()` gives the converted module
    (converted once and kept by the caller's store)."""

    def factory(in_channels: int | None = None, num_classes: int | None = None) -> nn.Module:
        _fixed(in_channels, spec.input_shape[0], "channels")
        _fixed(num_classes, spec.num_classes, "num_classes")
        module = copy.deepcopy(module_of())
        if torch.get_default_device().type == "meta":
            module = module.to("meta")
        return module.eval()

    _MODULE_OF[spec.name] = module_of
    register_uploaded(
        ModelInfo(
            spec.name, spec.title, "uploaded", "", _shape(spec), spec.num_classes, factory, spec
        )  # fmt: skip
    )


def _shape(spec: UploadedSpec) -> InputShape:
    return InputShape(*spec.input_shape)


def forget_uploaded_model(name: str) -> None:
    _MODULE_OF.pop(name, None)
    register_uploaded(None, name)


def load_uploaded(name: str, device: torch.device | str = "cpu") -> LoadedModel:
    """The uploaded model with its own weights, in eval mode, and how its input is prepared.

    The module is the store's own (shared, read-only: a caller that changes a model builds its
    copy with `build_model`); a copy only when it must move to another device."""
    info = get_model_info(name)
    module_of = _MODULE_OF.get(name)
    if module_of is None:  # registered without a store (`register_uploaded`): a copy
        module = info.factory(in_channels=info.default_input.channels)
    else:
        module = module_of()
    if any(p.device != torch.device(device) for p in module.parameters()):
        module = copy.deepcopy(module).to(device)
    return LoadedModel(name, module.eval(), uploaded_weights(info.uploaded))


def _sizes(architecture: str, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Input channels and classes a state dict was trained with, read from its first weighted
    layer and its fully connected head (a homework resnet18 for 10 classes on grey images)."""
    from cnncore.transfer import output_layer

    probe = build_model(architecture, device="meta")
    config: dict[str, int] = {}
    first = next((n for n, m in probe.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)), "")
    weight = state.get(f"{first}.weight")
    if weight is not None and weight.dim() >= 2:
        config["in_channels"] = int(weight.shape[1])
    if get_model_info(architecture).num_classes is not None:
        head = state.get(f"{output_layer(probe)}.weight")
        if head is not None and head.dim() == 2:
            config["num_classes"] = int(head.shape[0])
    return config


def state_dict_network(
    architecture: str, state: dict[str, torch.Tensor]
) -> tuple[nn.Module, dict[str, int], tuple[int, int, int], tuple[int, ...]]:
    """A zoo architecture with a user's state dict: (model, its config, input, output shape).

    torchvision's names are accepted where ours differ (`cnncore.pretrained.torchvision_layout`);
    every missing, unexpected or wrongly shaped key is named in one refusal."""
    from cnncore.pretrained import build_with, torchvision_layout

    info = get_model_info(architecture)
    if info.uploaded is not None:
        raise UnknownModelError(f"{architecture!r} is not a zoo architecture", "architecture")
    state = torchvision_layout(architecture, state)
    config = _sizes(architecture, state)
    model = build_with(architecture, state, config)
    default = info.default_input
    input_shape = (config.get("in_channels", default.channels), default.height, default.width)
    with torch.inference_mode():
        output = model(torch.zeros(1, *input_shape))
    return model, config, input_shape, tuple(output.shape[1:])
