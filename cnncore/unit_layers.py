"""The terms of one unit, per kind of layer (see `cnncore.unit`).

Every function reads the layer's module and its inputs' captured values and returns
(kind, total, detail): `total` recomputed in float64 from the terms written out in `detail`.
Windows follow PyTorch's conventions: input row of tap k for output row y is
y·stride − padding + k·dilation (rows outside 0..H−1 are padding); adaptive pooling reads rows
floor(y·H/out) .. ceil((y+1)·H/out) − 1; average pooling divides as `F.avg_pool2d` does
(`count_include_pad`, `divisor_override`, the window clipped at H + padding in ceil mode).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from cnncore.errors import CNNCoreError
from cnncore.features import LayerGraph
from cnncore.unit import INPUT, Activations

__all__ = [
    "ActivationDetail",
    "AddDetail",
    "BatchNormDetail",
    "ConvDetail",
    "ConvTransposeDetail",
    "CopyDetail",
    "LinearDetail",
    "Operand",
    "PoolDetail",
    "Softmax",
    "Terms",
    "compute_unit",
]

_F64 = torch.float64


@dataclass(frozen=True)
class ConvDetail:
    """A convolution's window per shown input channel (`in_channels`, the largest |sums|).

    `rows`/`cols` are the input rows/columns of the kh/kw taps (outside 0..H−1: padding,
    `padded` marks the taps); `window`, `kernel`, `products` are (shown, kh, kw); `rest_sum`
    adds the sums of the `rest_channels` channels not shown.
    """

    source: str
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    group_channels: int  # input channels one kernel reads
    in_channels: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    padded: np.ndarray  # (kh, kw) bool
    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray
    rest_sum: float
    rest_channels: int
    bias: float | None


@dataclass(frozen=True)
class Terms:
    """A weighted sum Σ w·x written out: the shown terms, the rest added up into one number."""

    inputs: tuple[float, ...]
    weights: tuple[float, ...]
    products: tuple[float, ...]
    rest_sum: float
    rest_terms: int
    bias: float | None

    @classmethod
    def of(cls, inputs, weights, shown, bias) -> Terms:  # noqa: ANN001
        products = inputs * weights
        return cls(
            tuple(float(inputs[i]) for i in shown), tuple(float(weights[i]) for i in shown),
            tuple(float(products[i]) for i in shown),
            float(products.sum() - products[shown].sum()), products.numel() - len(shown), bias,
        )  # fmt: skip


@dataclass(frozen=True)
class ConvTransposeDetail:
    """Every input tap that lands on the unit: input cell × kernel tap, the largest shown."""

    source: str
    channels: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    taps: tuple[tuple[int, int], ...]  # (ky, kx) of the kernel
    terms: Terms


@dataclass(frozen=True)
class BatchNormDetail:
    """y = (x − mean) / √(var + ε) · γ + β with the running statistics (eval mode)."""

    source: str
    input: float
    mean: float
    var: float
    eps: float
    gamma: float
    beta: float
    normalised: float


@dataclass(frozen=True)
class ActivationDetail:
    source: str
    function: str  # relu, relu6, tanh, sigmoid, leakyrelu, gelu ... (module class, lower case)
    input: float
    parameters: dict[str, float]


@dataclass(frozen=True)
class CopyDetail:
    """The unit is one input value as it is (identity, dropout in eval, flatten, concat)."""

    source: str
    channel: int
    y: int
    x: int
    input: float
    branch: int = 0  # concatenation: which input, and where its channels start
    offset: int = 0


@dataclass(frozen=True)
class PoolDetail:
    source: str
    op: str  # max or avg
    adaptive: bool
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    inside: np.ndarray  # (kh, kw) bool: taps inside the input (the rest is padding)
    window: np.ndarray  # (kh, kw) values, 0 where outside
    winner: tuple[int, int] | None  # max: tap (i, j) of the largest value
    divisor: int | None  # avg: what the window's sum is divided by
    window_sum: float


@dataclass(frozen=True)
class Operand:
    source: str
    role: str  # identity (the block's input), projection (a shortcut conv/BN), branch, constant
    value: float


@dataclass(frozen=True)
class AddDetail:
    operands: tuple[Operand, ...]


@dataclass(frozen=True)
class Softmax:
    """p = exp(z − max) / Σ exp(z_j − max) over the model's outputs."""

    logit: float
    max_logit: float
    exp: float
    sum_exp: float
    probability: float
    classes: int


@dataclass(frozen=True)
class LinearDetail:
    """Σ w·x + b: the `indices` with the largest |w·x| shown, the others summed."""

    source: str
    indices: tuple[int, ...]
    terms: Terms
    softmax: Softmax | None


def _pair(value) -> tuple[int, int]:  # noqa: ANN001
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _taps(start: int, count: int, step: int) -> np.ndarray:
    return start + np.arange(count) * step


def _window(values: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> tuple:
    """values[..., rows, cols] in float64 with 0 outside, and the (kh, kw) inside mask."""
    h, w = values.shape[-2:]
    in_r, in_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    inside = np.outer(in_r, in_c)
    window = torch.zeros((*values.shape[:-2], len(rows), len(cols)), dtype=_F64)
    r, c = torch.from_numpy(np.clip(rows, 0, h - 1)), torch.from_numpy(np.clip(cols, 0, w - 1))
    read = values[..., r[:, None], c[None, :]].to(_F64)
    window[...] = read * torch.from_numpy(inside)
    return window, inside


def _largest(values: torch.Tensor, cap: int) -> torch.Tensor:
    """Indices of the `cap` largest |values|, in index order."""
    if values.numel() <= cap:
        return torch.arange(values.numel())
    return torch.topk(values.abs(), cap).indices.sort().values


def _conv(module: nn.Conv2d, src: str, inp: torch.Tensor, index: tuple, cap: int):
    o, y, x = index
    if module.padding_mode != "zeros":
        raise CNNCoreError("only zero padding is written out", "layer", code="unit_unsupported")
    kh, kw = module.kernel_size
    (sh, sw), (dh, dw) = _pair(module.stride), _pair(module.dilation)
    if isinstance(module.padding, str):  # 'same' pads (d·(k−1))//2 before; 'valid' nothing
        same = module.padding == "same"
        ph, pw = (dh * (kh - 1) // 2, dw * (kw - 1) // 2) if same else (0, 0)
    else:
        ph, pw = _pair(module.padding)
    groups = module.groups
    cg = module.in_channels // groups
    c0 = (o // (module.out_channels // groups)) * cg
    rows, cols = _taps(y * sh - ph, kh, dh), _taps(x * sw - pw, kw, dw)
    window, inside = _window(inp[c0 : c0 + cg], rows, cols)
    kernel = module.weight[o].detach().to("cpu", _F64)
    products = window * kernel
    sums = products.sum((1, 2))
    bias = float(module.bias[o]) if module.bias is not None else None
    total = float(sums.sum()) + (bias or 0.0)
    shown = _largest(sums, cap)
    rest = float(sums.sum() - sums[shown].sum())
    detail = ConvDetail(
        src, (sh, sw), (ph, pw), (dh, dw), groups, cg, tuple(int(c0 + c) for c in shown),
        tuple(int(r) for r in rows), tuple(int(c) for c in cols), ~inside,
        window[shown].numpy(), kernel[shown].numpy(), products[shown].numpy(),
        sums[shown].numpy(), rest, cg - len(shown), bias,
    )  # fmt: skip
    return "conv", total, detail


def _conv_transpose(module: nn.ConvTranspose2d, src: str, inp: torch.Tensor, index, cap: int):
    """out[o, y, x] = b + Σ in[c, i, j]·W[c, o, ky, kx] over i·s − p + ky·d = y (and for x)."""
    o, y, x = index
    kh, kw = module.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = (
        _pair(module.stride), _pair(module.padding), _pair(module.dilation)
    )  # fmt: skip
    if module.groups != 1:
        raise CNNCoreError("grouped transposed convolutions are not written out", "layer",
                           code="unit_unsupported")  # fmt: skip
    h, w = inp.shape[-2:]

    def axis(u: int, k: int, s: int, p: int, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        taps = np.arange(k)
        shifted = u + p - taps * d
        ok = (shifted % s == 0) & (shifted // s >= 0) & (shifted // s < n)
        return (shifted // s)[ok], taps[ok]

    (ri, ky), (ci, kx) = axis(y, kh, sh, ph, dh, h), axis(x, kw, sw, pw, dw, w)
    values = inp[:, ri[:, None], ci[None, :]].to(_F64)  # (C, nr, nc)
    weights = module.weight[:, o][:, ky[:, None], kx[None, :]].detach().to("cpu", _F64)
    products = (values * weights).reshape(-1)
    bias = float(module.bias[o]) if module.bias is not None else None
    total = float(products.sum()) + (bias or 0.0)
    shown = _largest(products, cap)
    c, r, q = np.unravel_index(shown.numpy(), values.shape)
    detail = ConvTransposeDetail(
        src, tuple(int(v) for v in c), tuple(int(ri[v]) for v in r), tuple(int(ci[v]) for v in q),
        tuple((int(ky[a]), int(kx[b])) for a, b in zip(r, q, strict=True)),
        Terms.of(values.reshape(-1), weights.reshape(-1), shown, bias),
    )  # fmt: skip
    return "conv_transpose", total, detail


def _pool(module: nn.Module, src: str, inp: torch.Tensor, index: tuple):
    c, y, x = index
    h, w = inp.shape[-2:]
    adaptive = isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
    op = "max" if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) else "avg"
    divisor = None
    if adaptive:
        out_h, out_w = _pair(module.output_size)
        out_h, out_w = out_h or h, out_w or w
        r0, r1 = y * h // out_h, ((y + 1) * h + out_h - 1) // out_h
        q0, q1 = x * w // out_w, ((x + 1) * w + out_w - 1) // out_w
        rows, cols = np.arange(r0, r1), np.arange(q0, q1)
        divisor = len(rows) * len(cols)
    else:
        (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        (ph, pw), (dh, dw) = _pair(module.padding), _pair(getattr(module, "dilation", 1))
        rows, cols = _taps(y * sh - ph, kh, dh), _taps(x * sw - pw, kw, dw)
        if op == "avg":  # F.avg_pool2d: the window clipped at H + p, then at the picture
            span_h = min(rows[-1] + 1, h + ph) - rows[0]
            span_w = min(cols[-1] + 1, w + pw) - cols[0]
            clip_h = min(rows[-1] + 1, h) - max(rows[0], 0)
            clip_w = min(cols[-1] + 1, w) - max(cols[0], 0)
            divisor = module.divisor_override or (
                span_h * span_w if module.count_include_pad else clip_h * clip_w
            )
    window, inside = _window(inp[c], rows, cols)
    winner = None
    if op == "max":
        masked = window.masked_fill(~torch.from_numpy(inside), -math.inf)
        flat = int(masked.reshape(-1).argmax())
        winner = divmod(flat, len(cols))
        total = float(masked.reshape(-1)[flat])
    else:
        total = float(window.sum()) / int(divisor)
    detail = PoolDetail(
        src, op, adaptive, tuple(int(r) for r in rows), tuple(int(q) for q in cols), inside,
        window.numpy(), winner, int(divisor) if divisor else None, float(window.sum()),
    )  # fmt: skip
    return f"{op}_pool", total, detail


def _activation(module: nn.Module, src: str, inp: torch.Tensor, index: tuple):
    value = inp[index].to(_F64)
    parameters = {
        name: float(getattr(module, name))
        for name in ("negative_slope", "min_val", "max_val", "alpha", "beta", "threshold")
        if isinstance(getattr(module, name, None), (int, float))
    }
    with torch.no_grad():
        total = float(module(value.clone()))
    function = type(module).__name__.lower()
    return "activation", total, ActivationDetail(src, function, float(value), parameters)


def _batch_norm(module: nn.BatchNorm2d, src: str, inp: torch.Tensor, index: tuple):
    c = index[0]
    if module.running_mean is None:
        raise CNNCoreError("batch norm without running statistics is not written out", "layer",
                           code="unit_unsupported")  # fmt: skip
    value = float(inp[index].to(_F64))
    mean, var = float(module.running_mean[c]), float(module.running_var[c])
    gamma = float(module.weight[c]) if module.weight is not None else 1.0
    beta = float(module.bias[c]) if module.bias is not None else 0.0
    normalised = (value - mean) / math.sqrt(var + module.eps)
    total = normalised * gamma + beta
    detail = BatchNormDetail(src, value, mean, var, module.eps, gamma, beta, normalised)
    return "batch_norm", total, detail


def _cell(src: str, inp: torch.Tensor, index: tuple, **extra) -> CopyDetail:
    c, y, x = (*index, 0, 0)[:3]  # a unit of a 1-D layer is (index, 0, 0)
    return CopyDetail(src, int(c), int(y), int(x), float(inp[index]), **extra)


def _linear(module: nn.Linear, src: str, inp: torch.Tensor, index: tuple, cap: int, logits):
    o = index[0]
    inputs = inp.reshape(-1).to(_F64)
    weights = module.weight[o].detach().to("cpu", _F64)
    products = inputs * weights
    bias = float(module.bias[o]) if module.bias is not None else None
    total = float(products.sum()) + (bias or 0.0)
    shown = _largest(products, cap)
    softmax = None
    if logits is not None:
        z = logits.to(_F64)
        top = float(z.max())
        exps = torch.exp(z - top)
        softmax = Softmax(
            float(z[o]), top, float(exps[o]), float(exps.sum()), float(exps[o] / exps.sum()),
            z.numel(),
        )  # fmt: skip
    terms = Terms.of(inputs, weights, shown, bias)
    detail = LinearDetail(src, tuple(int(i) for i in shown), terms, softmax)
    return "linear", total, detail


def _role(layers: LayerGraph, source: str, scope: str) -> str:
    """Where a residual operand came from: the block's input, a projection or the branch."""
    if layers.types.get(source) == "Identity" or not source.startswith(scope + "."):
        return "identity"
    parts = source[len(scope) + 1 :].split(".")
    return "projection" if parts[0] in ("downsample", "shortcut", "projection") else "branch"


def _add(layers: LayerGraph, acts: Activations, node: fx.Node, layer: str, index: tuple):
    scope = layer.rsplit(".", 1)[0] if "." in layer else ""
    operands = []
    for arg in node.args:
        if isinstance(arg, fx.Node):
            source = INPUT if arg.op == "placeholder" else layers.names.get(arg)
            value = acts.values.get(source) if source is not None else None
            if value is None or tuple(value.shape) != tuple(acts.values[layer].shape):
                # an operand that is no layer (an item of a tuple) or is broadcast
                raise CNNCoreError("this addition's operands are not written out", "layer",
                                   code="unit_unsupported")  # fmt: skip
            operands.append(Operand(source, _role(layers, source, scope),
                                    float(value[index].to(_F64))))  # fmt: skip
        else:
            operands.append(Operand("", "constant", float(arg)))
    return "add", sum(op.value for op in operands), AddDetail(tuple(operands))


def _cat(acts: Activations, node: fx.Node, layer: str, index: tuple):
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    if dim not in (1, -3) or len(index) != 3:
        raise CNNCoreError("only a concatenation of channels is written out", "layer",
                           code="unit_unsupported")  # fmt: skip
    c, y, x = index
    offset = 0
    for branch, source in enumerate(acts.sources[layer]):
        channels = acts.values[source].shape[0]
        if c < offset + channels:
            inp = acts.values[source]
            detail = _cell(source, inp, (c - offset, y, x), branch=branch, offset=offset)
            return "concat", detail.input, detail
        offset += channels
    raise AssertionError("channel beyond the concatenated inputs")  # bounds checked before


def compute_unit(
    layers: LayerGraph,
    acts: Activations,
    node: fx.Node,
    layer: str,
    index: tuple,
    *,
    max_channels: int,
    max_terms: int,
):
    """(kind, total, detail) of the unit at `index` of `layer` (computed by `node`)."""
    sources = acts.sources.get(layer, ())
    src = sources[0] if sources else ""
    inp = acts.values.get(src)
    if node.op == "call_module":
        module = layers.graph_module.get_submodule(str(node.target))
        if isinstance(module, nn.ConvTranspose2d):
            return _conv_transpose(module, src, inp, index, max_terms)
        if isinstance(module, nn.Conv2d):
            return _conv(module, src, inp, index, max_channels)
        if isinstance(module, nn.BatchNorm2d):
            return _batch_norm(module, src, inp, index)
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                               nn.AdaptiveMaxPool2d)):  # fmt: skip
            return _pool(module, src, inp, index)
        if isinstance(module, nn.Linear):
            logits = acts.values[layer] if acts.output == layer else None
            return _linear(module, src, inp, index, max_terms, logits)
        if isinstance(module, nn.Flatten):
            unflat = tuple(int(i) for i in np.unravel_index(index[0], tuple(inp.shape)))
            detail = _cell(src, inp, unflat)
            return "flatten", detail.input, detail
        if isinstance(module, (nn.Identity, nn.Dropout, nn.Dropout2d)):
            detail = _cell(src, inp, index)
            return "identity", detail.input, detail
        if module.__module__.startswith("torch.nn.modules.activation"):
            return _activation(module, src, inp, index)
    elif node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd):
        return _add(layers, acts, node, layer, index)
    elif node.op == "call_function" and node.target is torch.cat:
        return _cat(acts, node, layer, index)
    elif node.op == "call_function" and node.target is torch.flatten and inp is not None:
        unflat = tuple(int(i) for i in np.unravel_index(index[0], tuple(inp.shape)))
        detail = _cell(src, inp, unflat)
        return "flatten", detail.input, detail
    raise CNNCoreError(
        f"layer {layer} ({layers.types[layer]}) is not written out yet", "layer",
        code="unit_unsupported", ctx={"layer": layer[:64]},
    )  # fmt: skip
