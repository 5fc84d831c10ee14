"""The model registry: factories registered by name, with the metadata the zoo pages show.

Follows torchvision's `@register_model()` / `get_model(name, **config)` / `list_models()`
(torchvision/models/_api.py): a factory is a plain function returning an `nn.Module`; the registry
only remembers it, its title, its paper and its default input.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnncore.errors import CNNCoreError
from cnncore.seeding import global_rng

__all__ = [
    "InputShape",
    "ModelInfo",
    "UnknownModelError",
    "build_model",
    "find_uploaded_with",
    "get_model",
    "get_model_info",
    "list_models",
    "model_input_shape",
    "register_model",
    "register_uploaded",
]


@dataclass(frozen=True)
class InputShape:
    """One input image: channels × height × width (no batch dimension)."""

    channels: int
    height: int
    width: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about a model before building it."""

    name: str
    title: str
    family: str
    paper: str
    default_input: InputShape
    num_classes: int | None  # None: not a classifier (the autoencoder reconstructs its input)
    factory: Callable[..., nn.Module]
    uploaded: Any = None  # cnncore.uploaded.UploadedSpec of a model a user uploaded

    @property
    def sized_by_input(self) -> bool:
        """True when the layers depend on the input size (a flatten without adaptive pooling)."""
        return "input_size" in inspect.signature(self.factory).parameters


class UnknownModelError(CNNCoreError):
    """A name that is not in the zoo; the API answers it with 404."""


_REGISTRY: dict[str, ModelInfo] = {}
# Models a user uploaded (cnncore.uploaded): found by name like the zoo's, never listed by
# `list_models()` (the zoo's catalogue), added and removed while the server runs.
_UPLOADED: dict[str, ModelInfo] = {}


def register_model(
    *,
    title: str,
    family: str,
    paper: str,
    default_input: tuple[int, int, int],
    num_classes: int | None = 1000,
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: record a factory under its function name (or `name`)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or factory.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = ModelInfo(
            key, title, family, paper, InputShape(*default_input), num_classes, factory
        )
        return factory

    return wrap


def list_models() -> list[str]:
    """Registered names, in registration order (roughly the order the curriculum meets them)."""
    return list(_REGISTRY)


def register_uploaded(info: ModelInfo | None, name: str | None = None) -> None:
    """Make an uploaded model known by its name (`info`), or forget `name` (info None)."""
    if info is None:
        _UPLOADED.pop(name or "", None)
    elif info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is a zoo model")
    else:
        _UPLOADED[info.name] = info


# Asked for a name neither table knows (a model another server process stored): registers it
# and returns True when it exists (app/uploaded_models.py sets it).
_UPLOADED_FINDER: list[Callable[[str], bool]] = []


def find_uploaded_with(finder: Callable[[str], bool] | None) -> None:
    _UPLOADED_FINDER[:] = [finder] if finder is not None else []


def get_model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY and name not in _UPLOADED and _UPLOADED_FINDER:
        _UPLOADED_FINDER[0](name)
    try:
        return _REGISTRY[name] if name in _REGISTRY else _UPLOADED[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}", "model") from None


def model_input_shape(
    name: str,
    channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> InputShape:
    """The C×H×W input a zoo model is built for: each omitted (None) value at the model's
    default, each given one a positive integer (anything else, 0 included, is a CNNCoreError
    naming its field). The summary, the block diagram and both receptive fields resolve their
    input here, so they agree on it. Unknown names raise UnknownModelError."""
    default = get_model_info(name).default_input
    return InputShape(
        _checked(channels, default.channels, "channels"),
        _checked(height, default.height, "height"),
        _checked(width, default.width, "width"),
    )


def get_model(
    name: str,
    *,
    in_channels: int | None = None,
    num_classes: int | None = None,
    input_size: tuple[int, int] | None = None,
    **config,
) -> nn.Module:
    """Build a zoo model by name; unspecified channels, classes and size take the defaults.

    `input_size` (height, width) reaches only factories whose layers depend on it (those that
    flatten a feature map into a fixed-size linear layer); the others pool adaptively and take any
    input large enough for their strides.
    """
    info = get_model_info(name)
    kwargs = dict(config)
    kwargs["in_channels"] = _checked(in_channels, info.default_input.channels, "channels")
    if info.num_classes is not None:
        kwargs["num_classes"] = _checked(num_classes, info.num_classes, "num_classes")
    if info.sized_by_input:
        height, width = input_size or (info.default_input.height, info.default_input.width)
        kwargs["input_size"] = (_checked(height, height, "height"), _checked(width, width, "width"))
    with global_rng():  # initial weights come from the global generator (cnncore.seeding)
        return info.factory(**kwargs)


def _checked(value: int | None, default: int, field: str) -> int:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CNNCoreError(
            f"{field} must be a positive integer, got {value!r}", field, code="positive_integer"
        )
    return value


class _SkipMetaInit(TorchFunctionMode):
    """In-place ops on meta tensors (the initialisers' `normal_`, `uniform_`, `erfinv_` …) do
    nothing. torch computes them through its Python reference decompositions, whose first call
    imports torch._dynamo — seconds on a cold server, for values a meta tensor does not have.
    Torch-function modes are thread-local: other threads' models initialise as usual."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("_"):
            # `nn.init.normal_(tensor=…)` passes its tensor by keyword
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def build_model(name: str, *, device: torch.device | str = "cpu", **config) -> nn.Module:
    """`get_model` with parameters allocated on `device` from the start, in eval mode.

    On `torch.device("meta")` no memory is allocated and initialisers do nothing, which is all a
    summary needs (shapes and counts): building vgg16 this way skips ~138M random draws.
    """
    if torch.device(device).type == "meta":
        with _SkipMetaInit(), torch.device(device):
            model = get_model(name, **config)
    else:
        with torch.device(device):
            model = get_model(name, **config)
    return model.eval()
