"""A model a user uploaded, known to the zoo's registry by its name (`onnx_<id>`).

Everything that builds a zoo model by name (`get_model`, `build_model`, `load_pretrained`)
builds an uploaded one the same way once `register_uploaded_model` has run: the factory gives a
fresh copy of the converted module (`cnncore.onnx_import`), on the meta device when the caller
builds there (summaries), so a caller may change its copy (a transfer-learning head) freely.
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
from cnncore.models import InputShape, ModelInfo, get_model_info, register_uploaded
from cnncore.weights import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, WeightsInfo

__all__ = [
    "UPLOADED_PREFIX",
    "UploadedSpec",
    "forget_uploaded_model",
    "load_uploaded",
    "register_uploaded_model",
    "uploaded_weights",
]

UPLOADED_PREFIX = "onnx_"


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
        file=f"{spec.title}.onnx"[:80],
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

    register_uploaded(
        ModelInfo(
            spec.name, spec.title, "uploaded", "", _shape(spec), spec.num_classes, factory, spec
        )  # fmt: skip
    )


def _shape(spec: UploadedSpec) -> InputShape:
    return InputShape(*spec.input_shape)


def forget_uploaded_model(name: str) -> None:
    register_uploaded(None, name)


def load_uploaded(name: str, device: torch.device | str = "cpu") -> LoadedModel:
    """The uploaded model with its own weights, in eval mode, and how its input is prepared."""
    info = get_model_info(name)
    model = info.factory(in_channels=info.default_input.channels)
    return LoadedModel(name, model.to(device).eval(), uploaded_weights(info.uploaded))
