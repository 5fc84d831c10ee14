"""The model zoo: classic architectures as plain `nn.Module`s, registered by name.

    get_model("resnet18", in_channels=3, num_classes=1000)   # an nn.Module
    list_models()                                            # ["lenet5", "tinyvgg", ...]

Conventions every family follows, so summaries, feature maps and receptive fields can walk them:
layers are modules (no functional calls for anything with parameters or that changes shape:
`nn.Flatten`, `nn.AdaptiveAvgPool2d`, `nn.ReLU` are modules), blocks are classes, a layer's name
is its dotted module path (`layer1.0.conv1`), each activation module is used once, and ReLUs are
not in-place (a forward hook capturing a conv's output must not see it rectified afterwards).
Every model traces with `torch.fx.symbolic_trace`.
"""

import importlib

from cnncore.models.registry import (
    InputShape,
    ModelInfo,
    UnknownModelError,
    build_model,
    find_uploaded_with,
    get_model,
    get_model_info,
    list_models,
    model_input_shape,
    register_model,
    register_uploaded,
)

# Importing a family registers its factories; this order is the order `list_models()` gives.
FAMILIES = (
    "lenet",
    "tinyvgg",
    "alexnet",
    "vgg",
    "resnet",
    "googlenet",
    "mobilenet",
    "autoencoder",
    "mlp",
)
for _family in FAMILIES:
    importlib.import_module(f"cnncore.models.{_family}")

__all__ = [
    "FAMILIES",
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
