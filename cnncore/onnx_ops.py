"""The ONNX operators cnnviz converts, each to the torch module or function it means.

Semantics follow the ONNX operator specification (onnx/docs/Operators.md, opsets 7 to 23); a
converter reads its node's attributes and inputs, checks what it cannot represent, and returns its
outputs. Layers with weights and the shape-changing steps a student looks at (conv, batch norm,
activations, pooling, flatten, linear, softmax) become `nn.Module`s named after the node; the
arithmetic between layers (residual additions, concatenations, reshapes) becomes function nodes,
as in a zoo model's `forward`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.onnx_graph import GraphBuilder, Value

__all__ = ["CONVERTERS", "NodeView", "converts"]


@dataclass
class NodeView:
    """What a converter sees of one ONNX node."""

    name: str
    op_type: str
    inputs: list[Value | None]  # None: an optional input left empty
    attrs: dict[str, Any]
    opset: int
    scope: str = ""  # the module path torch's dynamo exporter records (`layer1.0.conv1`)

    def refuse(self, why: str) -> CNNCoreError:
        return CNNCoreError(
            f"{self.op_type} node {self.name!r}: {why}",
            "model",
            code="onnx_operator_form",
            ctx={"model": self.op_type, "layer": self.name[:64]},
        )

    def constant(self, index: int, what: str) -> torch.Tensor | None:
        """Input `index` as a tensor known at import time (weights, shapes), or None if absent."""
        value = self.inputs[index] if index < len(self.inputs) else None
        if value is None:
            return None
        if value.const is None:
            raise self.refuse(f"its {what} must be a constant (an initializer), not computed")
        return value.const

    def ints(self, index: int, what: str) -> list[int] | None:
        tensor = self.constant(index, what)
        return None if tensor is None else [int(v) for v in tensor.reshape(-1).tolist()]


Converter = Callable[[GraphBuilder, NodeView], list[Value]]
CONVERTERS: dict[str, Converter] = {}


def converts(*op_types: str) -> Callable[[Converter], Converter]:
    def wrap(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn

    return wrap


def as_layer(b: GraphBuilder, n: NodeView, module: nn.Module, *inputs: Value) -> list[Value]:
    return [b.layer(n.name, n.op_type, module, *inputs, scope=n.scope)]


def _spatial(n: NodeView, x: Value) -> None:
    if len(x.shape) != 4:
        raise n.refuse(f"only 2-D images (N×C×H×W) are supported, the input is {len(x.shape)}-D")


def _pads(n: NodeView, x: Value, kernel: list[int], strides: list[int], dilations: list[int]):
    """ONNX pads (top, left, bottom, right) from `pads` or `auto_pad` (SAME_UPPER/LOWER)."""
    auto = n.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(n.attrs.get("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise n.refuse("pads must have 4 entries")
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    pads_begin, pads_end = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations, strict=True):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        pads_begin.append(small if auto == "SAME_UPPER" else large)
        pads_end.append(large if auto == "SAME_UPPER" else small)
    return pads_begin + pads_end


def _symmetric(pads: list[int]) -> tuple[int, int] | None:
    top, left, bottom, right = pads
    return (top, left) if (top, left) == (bottom, right) else None


def _pad_first(b: GraphBuilder, x: Value, pads: list[int], value: float) -> Value:
    top, left, bottom, right = pads
    return b.function(F.pad, x, (left, right, top, bottom), value=value)


@converts("Conv")
def conv(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    _spatial(n, x)
    weight = n.constant(1, "weight")
    bias = n.constant(2, "bias")
    if weight.dim() != 4:
        raise n.refuse("only 2-D convolutions are supported")
    out_channels, _, kh, kw = weight.shape
    strides = list(n.attrs.get("strides", [1, 1]))
    dilations = list(n.attrs.get("dilations", [1, 1]))
    groups = int(n.attrs.get("group", 1))
    pads = _pads(n, x, [kh, kw], strides, dilations)
    padding = _symmetric(pads)
    if padding is None:  # asymmetric (TensorFlow's "same" with a stride): pad first
        x, padding = _pad_first(b, x, pads, 0.0), (0, 0)
    module = nn.Conv2d(
        x.shape[1],
        out_channels,
        (kh, kw),
        tuple(strides),
        padding,
        tuple(dilations),
        groups,
        bias=bias is not None,
        device="meta",
    )
    if weight.shape[1] * groups != x.shape[1]:
        raise n.refuse(f"weight {tuple(weight.shape)} does not match {x.shape[1]} channels")
    _set(module, weight=weight, bias=bias)
    return as_layer(b, n, module, x)


@converts("ConvTranspose")
def conv_transpose(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    _spatial(n, x)
    weight, bias = n.constant(1, "weight"), n.constant(2, "bias")
    if weight.dim() != 4:
        raise n.refuse("only 2-D transposed convolutions are supported")
    groups = int(n.attrs.get("group", 1))
    strides = list(n.attrs.get("strides", [1, 1]))
    dilations = list(n.attrs.get("dilations", [1, 1]))
    output_padding = list(n.attrs.get("output_padding", [0, 0]))
    if "output_shape" in n.attrs or n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", ""):
        raise n.refuse("output_shape and auto_pad are not supported; give pads")
    padding = _symmetric(list(n.attrs.get("pads", [0, 0, 0, 0])))
    if padding is None:
        raise n.refuse("asymmetric pads are not supported")
    in_channels, per_group, kh, kw = weight.shape
    module = nn.ConvTranspose2d(
        in_channels,
        per_group * groups,
        (kh, kw),
        tuple(strides),
        padding,
        tuple(output_padding),
        groups,
        bias is not None,
        tuple(dilations),
        device="meta",
    )
    _set(module, weight=weight, bias=bias)
    return as_layer(b, n, module, x)


def _set(module: nn.Module, **tensors: torch.Tensor | None) -> None:
    """Give a module built on the meta device its real parameters and buffers."""
    for name, tensor in tensors.items():
        if tensor is None:
            continue
        tensor = tensor.to(torch.float32)
        if name in module._parameters:
            module._parameters[name] = nn.Parameter(tensor.reshape(module._parameters[name].shape))
        else:
            module._buffers[name] = tensor.reshape(module._buffers[name].shape)


@converts("BatchNormalization")
def batch_norm(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    if n.attrs.get("training_mode", 0):
        raise n.refuse("training_mode=1 is not supported (export the model in eval mode)")
    scale, shift = n.constant(1, "scale"), n.constant(2, "bias")
    mean, var = n.constant(3, "running mean"), n.constant(4, "running variance")
    eps = float(n.attrs.get("epsilon", 1e-5))
    kinds = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}
    if len(x.shape) not in kinds:
        raise n.refuse(f"batch norm of a {len(x.shape)}-D input is not supported")
    module = kinds[len(x.shape)](x.shape[1], eps=eps, device="meta")
    _set(module, weight=scale, bias=shift, running_mean=mean, running_var=var)
    module.num_batches_tracked = torch.tensor(0)
    return as_layer(b, n, module.eval(), x)


class HardSigmoid(nn.Module):
    """max(0, min(1, alpha·x + beta)) for ONNX's own alpha and beta (torch's is alpha = 1/6)."""

    def __init__(self, alpha: float, beta: float) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * self.alpha + self.beta, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"


def _activation(n: NodeView) -> nn.Module:
    a = n.attrs
    match n.op_type:
        case "Relu":
            return nn.ReLU()
        case "LeakyRelu":
            return nn.LeakyReLU(float(a.get("alpha", 0.01)))
        case "Sigmoid":
            return nn.Sigmoid()
        case "Tanh":
            return nn.Tanh()
        case "Elu":
            return nn.ELU(float(a.get("alpha", 1.0)))
        case "Selu":
            return nn.SELU()
        case "Softplus":
            return nn.Softplus()
        case "Softsign":
            return nn.Softsign()
        case "HardSwish":
            return nn.Hardswish()
        case "HardSigmoid":
            alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
            if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:
                return nn.Hardsigmoid()
            return HardSigmoid(alpha, beta)
        case "Gelu":
            approximate = a.get("approximate", b"none")
            approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
            return nn.GELU(approximate=approximate)
        case "Mish":
            return nn.Mish()
    raise n.refuse("not an activation")


@converts(
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Elu",
    "Softplus",
    "Softsign",
    "HardSwish",
    "HardSigmoid",
    "Gelu",
    "Mish",
)
def activation(b: GraphBuilder, n: NodeView) -> list[Value]:
    return as_layer(b, n, _activation(n), n.inputs[0])


@converts("Selu")
def selu(b: GraphBuilder, n: NodeView) -> list[Value]:
    alpha = float(n.attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(n.attrs.get("gamma", 1.05070102214813232421875))
    if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.0507010) > 1e-6:
        raise n.refuse("only the standard alpha and gamma are supported")
    return as_layer(b, n, nn.SELU(), n.inputs[0])


@converts("Clip")
def clip(b: GraphBuilder, n: NodeView) -> list[Value]:
    if n.opset < 11:
        low, high = n.attrs.get("min"), n.attrs.get("max")
    else:
        low_t, high_t = n.constant(1, "min"), n.constant(2, "max")
        low = None if low_t is None else float(low_t)
        high = None if high_t is None else float(high_t)
    if low == 0.0 and high == 6.0:
        module: nn.Module = nn.ReLU6()
    elif low is not None and high is not None:
        module = nn.Hardtanh(float(low), float(high))
    else:
        x = n.inputs[0]
        return [b.function(torch.clamp, x, min=low, max=high)]
    return as_layer(b, n, module, n.inputs[0])


def _pool_geometry(n: NodeView, x: Value):
    kernel = list(n.attrs["kernel_shape"])
    strides = list(n.attrs.get("strides", [1, 1]))
    dilations = list(n.attrs.get("dilations", [1, 1]))
    return kernel, strides, dilations, _pads(n, x, kernel, strides, dilations)


@converts("MaxPool")
def max_pool(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    _spatial(n, x)
    kernel, strides, dilations, pads = _pool_geometry(n, x)
    padding = _symmetric(pads)
    half = [(d * (k - 1) + 1) // 2 for k, d in zip(kernel, dilations, strict=True)]
    if padding is None or any(p > h for p, h in zip(padding, half, strict=True)):
        x, padding = _pad_first(b, x, pads, float("-inf")), (0, 0)
    module = nn.MaxPool2d(
        tuple(kernel),
        tuple(strides),
        padding,
        tuple(dilations),
        ceil_mode=bool(n.attrs.get("ceil_mode", 0)),
    )
    return as_layer(b, n, module, x)


@converts("AveragePool")
def average_pool(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    _spatial(n, x)
    kernel, strides, dilations, pads = _pool_geometry(n, x)
    if dilations != [1, 1]:
        raise n.refuse("dilated average pooling is not supported")
    include = bool(n.attrs.get("count_include_pad", 0))
    padding = _symmetric(pads)
    half = [k // 2 for k in kernel]
    if padding is None or any(p > h for p, h in zip(padding, half, strict=True)):
        if any(pads) and not include:
            raise n.refuse("asymmetric pads without count_include_pad are not supported")
        x, padding = _pad_first(b, x, pads, 0.0), (0, 0)
    module = nn.AvgPool2d(
        tuple(kernel), tuple(strides), padding, bool(n.attrs.get("ceil_mode", 0)), include
    )
    return as_layer(b, n, module, x)


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(b: GraphBuilder, n: NodeView) -> list[Value]:
    _spatial(n, n.inputs[0])
    kind = nn.AdaptiveAvgPool2d if n.op_type == "GlobalAveragePool" else nn.AdaptiveMaxPool2d
    return as_layer(b, n, kind(1), n.inputs[0])


@converts("LRN")
def local_response_norm(b: GraphBuilder, n: NodeView) -> list[Value]:
    a = n.attrs
    module = nn.LocalResponseNorm(
        int(a["size"]),
        float(a.get("alpha", 1e-4)),
        float(a.get("beta", 0.75)),
        float(a.get("bias", 1.0)),
    )
    return as_layer(b, n, module, n.inputs[0])


@converts("Flatten")
def flatten(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    axis = int(n.attrs.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis
    if axis == 1 and x.const is None:
        return as_layer(b, n, nn.Flatten(), x)
    rows = math.prod(x.shape[:axis])
    return [b.function(torch.reshape, x, (rows, -1))]


@converts("Gemm")
def gemm(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    a = n.attrs
    if a.get("transA", 0) or len(x.shape) != 2:
        raise n.refuse("only x·Wᵀ + b on a 2-D input (transA = 0) is supported")
    weight = n.constant(1, "weight")
    weight = weight if a.get("transB", 0) else weight.t()
    weight = weight * float(a.get("alpha", 1.0)) if a.get("alpha", 1.0) != 1.0 else weight
    bias = n.constant(2, "bias")
    out_features, in_features = weight.shape
    if bias is not None:
        bias = bias.to(torch.float32) * float(a.get("beta", 1.0))
        bias = bias.expand(1, out_features).reshape(out_features).clone()
    module = nn.Linear(in_features, out_features, bias is not None, device="meta")
    _set(module, weight=weight, bias=bias)
    return as_layer(b, n, module, x)


@converts("MatMul")
def matmul(b: GraphBuilder, n: NodeView) -> list[Value]:
    x, w = n.inputs[0], n.inputs[1]
    if w.const is not None and w.const.dim() == 2 and x.const is None:
        in_features, out_features = w.const.shape
        module = nn.Linear(in_features, out_features, bias=False, device="meta")
        _set(module, weight=w.const.t())
        return as_layer(b, n, module, x)
    return [b.function(torch.matmul, x, w)]


@converts("Softmax", "LogSoftmax")
def softmax(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    axis = int(n.attrs.get("axis", -1 if n.opset >= 13 else 1))
    axis = axis + len(x.shape) if axis < 0 else axis
    if n.opset < 13 and axis != len(x.shape) - 1:
        raise n.refuse("before opset 13, only a softmax over the last axis is supported")
    module = nn.Softmax(axis) if n.op_type == "Softmax" else nn.LogSoftmax(axis)
    return as_layer(b, n, module, x)
