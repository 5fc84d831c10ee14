"""How each layer of a torch.fx graph moves a receptive field: the rule it follows and its
sliding windows, read from the module or the functional call (kernel, stride, padding before,
dilation), with output sizes asked of `cnncore.arithmetic`.

Rules: `pass` (each output cell sits on the same input cell), `merge` (several paths meet:
elementwise arithmetic or channel concatenation), `window` (conv and pooling), `transposed`,
`adaptive` (adaptive pooling) and `global` (flattened or pooled over the whole map).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from cnncore.arithmetic import pair, pool_output_size, resolve_padding
from cnncore.errors import CNNCoreError
from cnncore.models.layers import spatial_output_size

__all__ = [
    "NON_TENSOR_METHODS",
    "LayerRule",
    "Window",
    "classify",
    "flattens",
    "operation_name",
    "windowed_output_size",
]

# fmt: off
# Layers that keep every unit where it is: each output cell depends on the same cell of the input
# (batch norm only in eval mode, where it is a fixed affine map; channel softmax and LRN mix
# channels, never positions).
_POINTWISE_MODULES = (
    nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU,
    nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus, nn.Mish,
    nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm, nn.Softmax, nn.LogSoftmax,
)
_POINTWISE_FUNCTIONS = {
    torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish, F.hardtanh,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.dropout, F.dropout2d, F.softmax,
    F.log_softmax, operator.neg, torch.neg,
}
_POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "to",
                      "softmax", "log_softmax", "neg"}
# Several paths meet: elementwise arithmetic on equal-sized maps, or concatenation of channels.
_MERGE_FUNCTIONS = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub,
                    operator.truediv, torch.add, torch.mul, torch.sub}
_MERGE_METHODS = {"add", "add_", "mul", "mul_", "sub"}
_CAT_FUNCTIONS = {torch.cat, torch.concat}
# Spatial layout flattened away: every output depends on every input position.
_FLATTEN_FUNCTIONS = {torch.flatten}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_GLOBAL_REDUCTIONS = {torch.mean, "mean", torch.amax, "amax"}
# Argument order of the functional pools (some are C builtins without a Python signature).
_POOL_FUNCTIONS = {
    F.max_pool2d: ("max", ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    F.avg_pool2d: ("avg", ("input", "kernel_size", "stride", "padding", "ceil_mode")),
    F.adaptive_avg_pool2d: ("adaptive", ("input", "output_size")),
    F.adaptive_max_pool2d: ("adaptive", ("input", "output_size")),
}
# fmt: on
NON_TENSOR_METHODS = {"size", "dim", "numel"}  # read shapes: nothing of the image flows on


@dataclass(frozen=True)
class Window:
    """A sliding window along one axis: kernel taps, stride, padding before, dilation."""

    kernel: int
    stride: int
    padding: int  # before (top/left), the side that moves the field
    dilation: int = 1

    @property
    def effective(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class LayerRule:
    """How one node moves the field: its rule, per-axis windows, and what sizes it."""

    rule: str  # pass | merge | window | transposed | adaptive | global
    windows: tuple[Window, Window] | None = None
    module: nn.Module | None = None
    ceil_mode: bool = False  # functional pools (modules carry their own)
    output_size: object = field(default=None)  # adaptive pooling's target (int, pair, None)


def _module_windows(module: nn.Module) -> tuple[str, tuple[Window, Window]] | None:
    """(rule, per-axis windows) of a conv, transposed conv or pooling module."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        kernel = pair(module.kernel_size, "kernel_size")
        stride = pair(module.stride, "stride")
        dilation = pair(module.dilation, "dilation")
        transposed = isinstance(module, nn.ConvTranspose2d)
        pads = resolve_padding(module.padding, kernel, stride, dilation, transposed=transposed)
        windows = (
            Window(kernel[0], stride[0], pads.top, dilation[0]),
            Window(kernel[1], stride[1], pads.left, dilation[1]),
        )
        return ("transposed" if transposed else "window"), windows
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        windows = _pool_windows(
            module.kernel_size, module.stride, module.padding, getattr(module, "dilation", 1)
        )
        return "window", windows
    return None


def _pool_windows(kernel, stride, padding, dilation) -> tuple[Window, Window]:
    k = pair(kernel, "kernel_size")
    s = k if stride is None or stride == [] else pair(stride, "stride")
    p = resolve_padding(padding, k)
    d = pair(dilation, "dilation")
    return Window(k[0], s[0], p.top, d[0]), Window(k[1], s[1], p.left, d[1])


def windowed_output_size(rule: LayerRule, size: tuple[int, int]) -> tuple[int, int]:
    """The feature map after a windowed step, always from `cnncore.arithmetic`."""
    if rule.module is not None:
        return spatial_output_size(rule.module, *size)
    assert rule.windows is not None
    out = [
        pool_output_size(n, w.kernel, w.stride, w.padding, w.dilation, rule.ceil_mode)
        for n, w in zip(size, rule.windows, strict=True)
    ]
    return out[0], out[1]


def classify(node: fx.Node, modules: dict[str, nn.Module], spatial: bool, name: str) -> LayerRule:
    """The rule of one node the image flows through, or a CNNCoreError naming the layer."""
    target = node.target
    if node.op == "call_module":
        module = modules[str(target)]
        found = _module_windows(module)
        if found:
            return LayerRule(found[0], found[1], module)
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return LayerRule("adaptive", module=module, output_size=module.output_size)
        if isinstance(module, nn.Flatten):
            return LayerRule("global" if spatial else "pass", module=module)
        if isinstance(module, _POINTWISE_MODULES) or isinstance(module, nn.Linear) and not spatial:
            return LayerRule("pass", module=module)
        kind = type(module).__name__
    else:
        if target in _POOL_FUNCTIONS:
            kind, names = _POOL_FUNCTIONS[target]
            bound = dict(zip(names, node.args, strict=False)) | dict(node.kwargs)
            if kind == "adaptive":
                return LayerRule("adaptive", output_size=bound["output_size"])
            windows = _pool_windows(
                bound["kernel_size"],
                bound.get("stride"),
                bound.get("padding", 0),
                bound.get("dilation", 1),
            )
            return LayerRule("window", windows, ceil_mode=bool(bound.get("ceil_mode", False)))
        if target in _MERGE_FUNCTIONS or target in _MERGE_METHODS:
            return LayerRule("merge")
        if target in _CAT_FUNCTIONS:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if spatial and dim not in (1, -3):
                raise CNNCoreError(
                    f"layer {name} concatenates along dimension {dim}; only channel "
                    "concatenation keeps a receptive field",
                    "model",
                )
            return LayerRule("merge")
        if target in _POINTWISE_FUNCTIONS or target in _POINTWISE_METHODS:
            return LayerRule("pass")
        if target in _FLATTEN_FUNCTIONS or target in _FLATTEN_METHODS:
            return LayerRule("global" if spatial else "pass")
        if target in _GLOBAL_REDUCTIONS:
            dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            if {d % 4 for d in dims} == {2, 3}:  # a global average (or max) over the map
                return LayerRule("global" if spatial else "pass")
        kind = getattr(target, "__name__", str(target))
    raise CNNCoreError(
        f"layer {name} ({kind}) is not one cnnviz can follow for receptive fields "
        "(conv, pooling, elementwise, add, cat, flatten and linear layers are)",
        "model",
    )


def flattens(node: fx.Node) -> bool:
    """True for flatten/view/reshape; False for a keepdim mean (which leaves a 1×1 map)."""
    if node.target in _GLOBAL_REDUCTIONS:
        return not node.kwargs.get("keepdim", len(node.args) > 2 and bool(node.args[2]))
    return True


def operation_name(node: fx.Node, module: nn.Module | None) -> str:
    if module is not None:
        return type(module).__name__
    return node.target if isinstance(node.target, str) else node.target.__name__
