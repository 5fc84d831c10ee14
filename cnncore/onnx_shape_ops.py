"""The ONNX operators between layers: arithmetic, constants and the shape bookkeeping
(Shape, Gather, Concat, Reshape, Slice …) exporters write around a flatten or a pad.

On constants these fold at import time (`GraphBuilder.function`); on the image's values they
become function nodes of the graph, as the additions and concatenations of a zoo `forward`.
Registered in `cnncore.onnx_ops.CONVERTERS` by importing this module.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.onnx_graph import BINARY, GraphBuilder, Value
from cnncore.onnx_ops import NodeView, as_layer, converts
from cnncore.onnx_tensors import torch_dtype

__all__: list[str] = []


@converts("Dropout", "Identity")
def identity(b: GraphBuilder, n: NodeView) -> list[Value]:
    return [n.inputs[0]]


@converts("Constant")
def constant(b: GraphBuilder, n: NodeView) -> list[Value]:
    a = n.attrs
    if "value" in a:
        return [Value.constant(a["value"])]
    for key, dtype in (("value_float", torch.float32), ("value_int", torch.int64)):
        if key in a:
            return [Value.constant(torch.tensor(a[key], dtype=dtype))]
    for key, dtype in (("value_floats", torch.float32), ("value_ints", torch.int64)):
        if key in a:
            return [Value.constant(torch.tensor(list(a[key]), dtype=dtype))]
    raise n.refuse("only tensor, float and int constants are supported")


@converts("ConstantOfShape")
def constant_of_shape(b: GraphBuilder, n: NodeView) -> list[Value]:
    dims = n.ints(0, "shape")
    if any(d < 0 for d in dims) or math.prod(dims) > b.max_constant_elements:
        raise n.refuse(f"a constant of shape {dims} is not allowed")
    fill = n.attrs.get("value", torch.zeros(1))
    return [Value.constant(torch.full(tuple(dims), fill.reshape(-1)[0].item(), dtype=fill.dtype))]


@converts("Expand")
def expand(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    shape = torch.broadcast_shapes(x.shape, tuple(n.ints(1, "shape")))
    return [b.function(torch.broadcast_to, x, tuple(shape))]


@converts("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")
def binary(b: GraphBuilder, n: NodeView) -> list[Value]:
    if len(n.inputs) != 2:
        raise n.refuse("exactly two inputs are supported")
    x, y = n.inputs
    fn = BINARY[n.op_type]
    if n.op_type == "Div" and not x.meta.is_floating_point():
        return [b.function(torch.div, x, y, rounding_mode="trunc")]
    return [b.function(fn, x, y)]


_UNARY = {
    "Sqrt": torch.sqrt,
    "Exp": torch.exp,
    "Log": torch.log,
    "Neg": torch.neg,
    "Abs": torch.abs,
    "Erf": torch.erf,
    "Reciprocal": torch.reciprocal,
    "Floor": torch.floor,
    "Ceil": torch.ceil,
}


@converts(*_UNARY)
def unary(b: GraphBuilder, n: NodeView) -> list[Value]:
    return [b.function(_UNARY[n.op_type], n.inputs[0])]


@converts("Concat")
def concat(b: GraphBuilder, n: NodeView) -> list[Value]:
    values = [v for v in n.inputs if v is not None]
    return [b.function(torch.cat, values, int(n.attrs["axis"]))]


@converts("Shape")
def shape(b: GraphBuilder, n: NodeView) -> list[Value]:
    dims = n.inputs[0].shape
    start, end = n.attrs.get("start", 0), n.attrs.get("end", len(dims))
    return [Value.constant(torch.tensor(dims[start:end], dtype=torch.int64))]


def _axes(n: NodeView, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or a constant input (opset 13 / 18 on)."""
    if "axes" in n.attrs:
        return list(n.attrs["axes"])
    return n.ints(index, "axes")


def _reshape_to(x: torch.Tensor, rest: tuple[int, ...]) -> torch.Tensor:
    """Reshape keeping the batch axis first: the graph is imported at batch 1, run at any."""
    return x.reshape(x.shape[0], *rest)


torch.fx.wrap("_reshape_to")


@converts("Reshape")
def reshape(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    target = n.ints(1, "shape")
    if not n.attrs.get("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    if x.const is not None:
        return [b.function(torch.reshape, x, tuple(target))]
    resolved = tuple(torch.empty(x.shape, device="meta").reshape(target).shape)
    if not resolved or resolved[0] != x.shape[0]:
        raise n.refuse("a reshape that changes the batch axis is not supported")
    if len(resolved) == 2 and len(x.shape) > 2:
        return as_layer(b, n, nn.Flatten(), x)
    return [b.function(_reshape_to, x, resolved[1:])]


@converts("Transpose")
def transpose(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    perm = list(n.attrs.get("perm", reversed(range(len(x.shape)))))
    return [b.function(torch.permute, x, tuple(perm))]


@converts("Squeeze", "Unsqueeze")
def squeeze(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    axes = _axes(n, 1)
    if n.op_type == "Squeeze":
        dims = tuple(axes) if axes is not None else None
        return [b.function(torch.squeeze, x, dims) if dims else b.function(torch.squeeze, x)]
    rank = len(x.shape) + len(axes)
    out = x
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        out = b.function(torch.unsqueeze, out, axis)
    return [out]


@converts("Gather")
def gather(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    index = n.constant(1, "indices")
    axis = int(n.attrs.get("axis", 0))
    axis = axis + len(x.shape) if axis < 0 else axis
    size = x.shape[axis]
    index = torch.where(index < 0, index + size, index)
    if bool(((index < 0) | (index >= size)).any()):
        raise n.refuse("an index is out of range")
    if index.dim() == 0:  # the axis goes: select, which keeps every other axis (the batch's)
        return [b.function(torch.select, x, axis, int(index))]
    flat = b.function(torch.index_select, x, axis, Value.constant(index.reshape(-1)))
    if index.dim() == 1:
        return [flat]
    # unflatten, not a reshape to the import's shape: the batch axis stays free
    return [b.function(torch.unflatten, flat, axis, tuple(index.shape))]


@converts("Cast")
def cast(b: GraphBuilder, n: NodeView) -> list[Value]:
    return [b.function(torch.Tensor.to, n.inputs[0], torch_dtype(int(n.attrs["to"]), n.name))]


@converts("Slice")
def slice_(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    if n.opset < 10:
        starts, ends = list(n.attrs["starts"]), list(n.attrs["ends"])
        axes, steps = n.attrs.get("axes"), None
    else:
        starts, ends = n.ints(1, "starts"), n.ints(2, "ends")
        axes, steps = n.ints(3, "axes"), n.ints(4, "steps")
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    out = x
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        if step == 0:
            raise n.refuse("a step of 0 is not allowed")
        index = torch.tensor(_slice_indices(x.shape[axis], start, end, step), dtype=torch.int64)
        out = b.function(torch.index_select, out, axis, Value.constant(index))
    return [out]


def _slice_indices(size: int, start: int, end: int, step: int) -> range:
    """The positions ONNX Slice takes on one axis (negative positions count from the end)."""
    start, end = (start + size if start < 0 else start), (end + size if end < 0 else end)
    if step > 0:
        return range(max(0, min(size, start)), max(0, min(size, end)), step)
    return range(max(-1, min(size - 1, start)), max(-1, min(size - 1, end)), step)


@converts("ReduceMean")
def reduce_mean(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    axes = _axes(n, 1)
    dims = tuple(axes) if axes else tuple(range(len(x.shape)))
    keep = bool(n.attrs.get("keepdims", 1))
    if sorted(a % len(x.shape) for a in dims) == [2, 3] and keep and len(x.shape) == 4:
        return as_layer(b, n, nn.AdaptiveAvgPool2d(1), x)
    return [b.function(torch.mean, x, dims, keep)]


@converts("Pad")
def pad(b: GraphBuilder, n: NodeView) -> list[Value]:
    x = n.inputs[0]
    mode = n.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if n.opset < 11:
        pads, value = list(n.attrs["pads"]), float(n.attrs.get("value", 0.0))
    else:
        pads = n.ints(1, "pads")
        fill = n.constant(2, "constant value")
        value = 0.0 if fill is None or fill.numel() == 0 else float(fill.reshape(-1)[0])
        if n.constant(3, "axes") is not None:
            raise n.refuse("the axes input is not supported")
    rank = len(x.shape)
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise n.refuse("pads must be 2 per axis and not negative (cropping is not supported)")
    torch_pads: list[int] = []
    for axis in reversed(range(rank)):
        torch_pads += [pads[axis], pads[axis + rank]]
    while torch_pads[-2:] == [0, 0] and len(torch_pads) > 2:
        torch_pads = torch_pads[:-2]
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}
    if mode not in modes:
        raise n.refuse(f"mode {mode!r} is not supported")
    if mode == "constant" and value == 0.0 and len(torch_pads) == 4 and rank == 4:
        return as_layer(b, n, nn.ZeroPad2d(tuple(torch_pads)), x)
    kwargs = {"value": value} if mode == "constant" else {}
    return [b.function(F.pad, x, tuple(torch_pads), modes[mode], **kwargs)]


@converts("GatherND")
def gather_nd(b: GraphBuilder, n: NodeView) -> list[Value]:
    """data[i₀, i₁, …] for each row of indices (ONNX GatherND, batch_dims 0): what
    torch.onnx writes for an adaptive average pool whose windows are not one fixed stride
    (AlexNet's 6×6 pool of the 1×1 to 7×7 maps a run's small pictures leave)."""
    x = n.inputs[0]
    index = n.constant(1, "indices")
    if int(n.attrs.get("batch_dims", 0)) != 0:
        raise n.refuse("only batch_dims 0 is supported")
    depth = index.shape[-1] if index.dim() else 0
    if index.dim() == 0 or not 1 <= depth <= len(x.shape):
        raise n.refuse("the indices' last axis must name 1 to rank(data) axes")
    sizes = torch.tensor(x.shape[:depth], dtype=torch.int64)
    index = torch.where(index < 0, index + sizes, index.to(torch.int64))
    if bool(((index < 0) | (index >= sizes)).any()):
        raise n.refuse("an index is out of range")
    axes = tuple(Value.constant(index[..., axis].contiguous()) for axis in range(depth))
    return [b.function(operator.getitem, x, axes)]


@converts("Where")
def where(b: GraphBuilder, n: NodeView) -> list[Value]:
    condition, x, y = n.inputs
    if condition.meta.dtype != torch.bool:
        raise n.refuse("the condition must be a bool tensor")
    return [b.function(torch.where, condition, x, y)]
