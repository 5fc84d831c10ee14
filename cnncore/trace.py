"""Step traces of a convolution: every output cell's window, products, sums, bias and value.

A trace is what the convolution explorer animates: for each output cell of a conv2d, the input
window it reads (padded taps marked), the element-wise products per input channel, the per-channel
sums, the bias and the value before and after the activation; for a transposed convolution, each
input cell scattering `value × kernel` into the output. All numbers come out of one vectorised
pass (`F.pad` + a strided view for the windows, broadcasting for the products, matrix products for
the sums, `F.fold` for the scatter), never a Python loop per cell; sizes come from
`cnncore.arithmetic` alone.

Everything is float64 so that the sums shown to a student add up to the printed output exactly
enough to be checked against `F.conv2d` / `F.conv_transpose2d`. Conventions follow PyTorch
(weight layouts, `padding='same'`, `output_padding`) and Dumoulin & Visin, "A guide to convolution
arithmetic for deep learning" (2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnncore.arithmetic import ConvShape, PaddingArg, conv2d_shape, pair
from cnncore.errors import CNNCoreError, shape_text

__all__ = [
    "ACTIVATIONS",
    "ConvTrace",
    "ConvTransposeTrace",
    "trace_conv2d",
    "trace_conv_transpose2d",
]

IntOrPair = int | tuple[int, int] | list[int]
ArrayLike = torch.Tensor | Sequence

# torch's own functions, so the explorer's activation is exactly the layer's (leaky slope 0.01,
# as `nn.LeakyReLU()`).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": F.leaky_relu,
}


@dataclass(frozen=True)
class ConvTrace:
    """A conv2d written out cell by cell, in torch's channel-first layout (maps last).

    `rows[y]` / `cols[x]` are the input coordinates (unpadded, so possibly < 0 or ≥ H) of the
    kh / kw taps of output row y / column x; `padded[y, x]` marks the taps that fall in padding.
    `products[o, :, :, :, y, x]` is the Cg×kh×kw window of output cell (y, x) times kernel o,
    `channel_sums[o, :, y, x]` its sum per input channel, `sums[o, y, x]` the total.
    `in_channels[o]` lists the input channels kernel o reads.
    """

    shape: ConvShape
    padded_input: torch.Tensor  # C×Hp×Wp
    rows: torch.Tensor  # H'×kh, long
    cols: torch.Tensor  # W'×kw, long
    in_channels: torch.Tensor  # O×Cg, long
    products: torch.Tensor  # O×Cg×kh×kw×H'×W'
    channel_sums: torch.Tensor  # O×Cg×H'×W'
    sums: torch.Tensor  # O×H'×W'
    bias: torch.Tensor  # O (zeros without bias)
    pre_activation: torch.Tensor  # O×H'×W'
    output: torch.Tensor  # O×H'×W'
    activation: str | None

    @property
    def padded(self) -> torch.Tensor:
        """H'×W'×kh×kw bools: the taps that fall in the padding (derived on access)."""
        return _outside(self.rows, self.cols, self.shape.in_height, self.shape.in_width)


@dataclass(frozen=True)
class ConvTransposeTrace:
    """A transposed conv2d written out as scatters, channel-first (input maps last).

    Input cell (i, j) of every channel c in kernel o's group adds `x[c, i, j] · w[c, o']` to the
    output rows `rows[i]` and columns `cols[j]` (final, cropped coordinates, so possibly < 0 or
    ≥ H'); `cropped[i, j]` marks the taps that land outside the output (cut by `padding`).
    `contributions[o, :, :, :, i, j]` is Cg×kh×kw, `scatter[o, :, :, i, j]` its sum over channels.
    """

    shape: ConvShape
    rows: torch.Tensor  # H×kh, long
    cols: torch.Tensor  # W×kw, long
    in_channels: torch.Tensor  # O×Cg, long
    inputs: torch.Tensor  # O×Cg×H×W: x[c, i, j] for each channel c of kernel o's group
    contributions: torch.Tensor  # O×Cg×kh×kw×H×W
    scatter: torch.Tensor  # O×kh×kw×H×W (summed over the group's channels)
    bias: torch.Tensor  # O
    pre_activation: torch.Tensor  # O×H'×W'
    output: torch.Tensor  # O×H'×W'
    activation: str | None

    @property
    def cropped(self) -> torch.Tensor:
        """H×W×kh×kw bools: the taps that land outside the output (derived on access)."""
        return _outside(self.rows, self.cols, self.shape.out_height, self.shape.out_width)


def _tensor(values: ArrayLike, dims: int, field: str, what: str) -> torch.Tensor:
    """Nested lists or a tensor as a finite float64 tensor of `dims` dimensions."""
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64).contiguous()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CNNCoreError(
            f"{field} must be a rectangular array of numbers ({what})",
            field,
            code="rectangular_array",
            ctx={"expected_shape": what},
        ) from exc
    if tensor.dim() != dims or tensor.numel() == 0:
        raise CNNCoreError(
            f"{field} must be a non-empty {what} array, got shape {list(tensor.shape)}",
            field,
            code="array_shape",
            ctx={"expected_shape": what, "shape": shape_text(tensor.shape)},
        )
    # One reduction instead of `isfinite(...).all()` (several elementwise passes): aminmax
    # propagates NaN, and NaN fails both comparisons.
    low, high = torch.aminmax(tensor)
    if not (low.item() > -math.inf and high.item() < math.inf):
        raise CNNCoreError(f"{field} contains NaN or infinity", field, code="finite_numbers")
    return tensor



def _bias(bias: ArrayLike | None, out_channels: int) -> torch.Tensor:
    if bias is None:
        return torch.zeros(out_channels, dtype=torch.float64)
    values = _tensor(bias, 1, "bias", "[O]")
    if values.numel() != out_channels:
        raise CNNCoreError(
            f"bias needs one value per output channel ({out_channels}), got {values.numel()}",
            "bias",
            code="bias_per_output_channel",
            ctx={"out_channels": out_channels, "entries": values.numel()},
        )
    return values


def _check_activation(activation: str | None) -> None:
    if activation is not None and activation not in ACTIVATIONS:
        raise CNNCoreError(
            f"activation must be one of {sorted(ACTIVATIONS)} or none, got {activation!r}",
            "activation",
            code="enum",
            ctx={"expected": sorted(ACTIVATIONS)},
        )


def _activate(pre: torch.Tensor, activation: str | None) -> torch.Tensor:
    return pre if activation is None else ACTIVATIONS[activation](pre)


def _group_channels(out_channels: int, groups: int, group_width: int) -> torch.Tensor:
    """O×Cg: the input channels each output channel's group reads (contiguous slices, as torch)."""
    channels = torch.arange(groups * group_width).view(groups, 1, group_width)
    return channels.expand(groups, out_channels // groups, group_width).reshape(out_channels, -1)


def _taps(count: int, kernel: int, stride: int, start: int, dilation: int) -> torch.Tensor:
    """count×kernel coordinates: tap a of position i sits at i·stride + start + a·dilation."""
    first = torch.arange(start, start + count * stride, stride)
    return first[:, None] + torch.arange(0, kernel * dilation, dilation)


def _windows(
    padded: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out: tuple[int, int],
) -> torch.Tensor:
    """C×kh×kw×H'×W' view: [c, a, b, y, x] = padded[c, y·sh + a·dh, x·sw + b·dw].

    The same numbers as `F.unfold` (im2col), read in place: copying this view into a contiguous
    tensor is several times faster than `F.unfold`'s own copy.
    """
    channel, row, col = padded.stride()
    return padded.as_strided(
        (padded.shape[0], *kernel, *out),
        (channel, dilation[0] * row, dilation[1] * col, stride[0] * row, stride[1] * col),
        padded.storage_offset(),
    )


def _outside(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """H×W×kh×kw mask of taps whose row or column falls outside [0, height) × [0, width)."""
    bad_rows = (rows < 0) | (rows >= height)
    bad_cols = (cols < 0) | (cols >= width)
    return bad_rows[:, None, :, None] | bad_cols[None, :, None, :]


def _check_budget(numbers: int, max_products: int | None, what: str) -> None:
    if max_products is not None and numbers > max_products:
        raise CNNCoreError(
            f"this trace would write out {numbers:,} {what} (limit {max_products:,}): use a "
            "smaller input, fewer or smaller kernels, or a larger stride",
            "input",
            code="trace_too_large",
            ctx={"count": numbers, "limit": max_products},
        )


def trace_conv2d(
    input: ArrayLike,
    kernels: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingArg = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    activation: str | None = None,
    max_products: int | None = None,
) -> ConvTrace:
    """Trace `activation(F.conv2d(input, kernels, bias, stride, padding, dilation, groups))`.

    `input` is C×H×W, `kernels` O×(C/groups)×kh×kw (PyTorch's weight layout), `bias` [O] or None.
    Each output cell is the sum over the group's channels and the kernel taps of window × kernel,
    plus the bias (Goodfellow, Bengio & Courville, "Deep Learning", 2016, eq. 9.6, as
    cross-correlation). `max_products` refuses traces that would write out more numbers
    (products, plus one value per output cell and the padded input), as a bound on the answer.
    """
    _check_activation(activation)
    x = _tensor(input, 3, "input", "C×H×W")
    w = _tensor(kernels, 4, "kernels", "O×C×kh×kw")
    channels, height, width = x.shape
    out_channels, group_width, kh, kw = w.shape
    if groups < 1 or channels % groups or group_width != channels // groups:
        raise CNNCoreError(
            f"each kernel must have input channels / groups = {channels} / {groups} channels, "
            f"got kernels of shape {list(w.shape)}",
            "kernels",
            code="kernel_channels_mismatch",
            ctx={"channels": channels, "groups": groups, "shape": shape_text(w.shape)},
        )
    layer = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    shape = conv2d_shape(
        *x.shape, (kh, kw), out_channels=out_channels, bias=bias is not None, **layer
    )
    b = _bias(bias, out_channels)
    out_h, out_w = shape.out_height, shape.out_width
    pad = shape.padding
    _check_budget(
        out_channels * out_h * out_w * (group_width * kh * kw + 1)
        + channels * (height + pad.top + pad.bottom) * (width + pad.left + pad.right),
        max_products,
        "products, output values and padded input cells",
    )
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")

    padded_input = F.pad(x, (pad.left, pad.right, pad.top, pad.bottom))
    # The windows laid out as unfold (im2col) does: (C·kh·kw)×(H'·W'), so in every product below
    # the long, contiguous axis is the output cells (fast elementwise work, no transposes).
    taps, cells, per_group = kh * kw, out_h * out_w, out_channels // groups
    windows = _windows(padded_input, (kh, kw), (sh, sw), (dh, dw), (out_h, out_w)).contiguous()
    windows = windows.view(groups, 1, group_width, taps, cells)
    weights = w.view(groups, per_group, group_width, taps, 1)
    # Writing the products is most of the trace's time (one float64 number per tap per cell):
    # one broadcast multiply straight into the trace's own contiguous layout, nothing copied after.
    products = torch.mul(
        windows, weights, out=w.new_empty(groups, per_group, group_width, taps, cells)
    )
    # The sums are contractions of windows with weights (batched matrix products), not
    # reductions of `products` over its short tap axis, which would be several times slower.
    # channel_sums[g, o, c] = weights[g, o, c] @ windows[g, c], one bmm over the G·Cg channels
    # ((O/G)×taps @ taps×cells each; `matmul` on the 4-d views costs twice as much), then swapped
    by_channel = w.view(groups, per_group, group_width, taps).transpose(1, 2)
    by_channel = by_channel.reshape(groups * group_width, per_group, taps)
    channel_sums = torch.bmm(by_channel, windows.view(groups * group_width, taps, cells))
    channel_sums = channel_sums.view(groups, group_width, per_group, cells).transpose(1, 2)
    sums = torch.bmm(w.view(groups, per_group, -1), windows.view(groups, -1, cells))
    pre_activation = sums.view(out_channels, out_h, out_w) + b.view(out_channels, 1, 1)

    rows = _taps(out_h, kh, sh, -pad.top, dh)
    cols = _taps(out_w, kw, sw, -pad.left, dw)
    return ConvTrace(
        shape=shape,
        padded_input=padded_input,
        rows=rows,
        cols=cols,
        in_channels=_group_channels(out_channels, groups, group_width),
        products=products.view(out_channels, group_width, kh, kw, out_h, out_w),
        channel_sums=channel_sums.reshape(out_channels, group_width, out_h, out_w),
        sums=sums.reshape(out_channels, out_h, out_w),
        bias=b,
        pre_activation=pre_activation,
        output=_activate(pre_activation, activation),
        activation=activation,
    )


def trace_conv_transpose2d(
    input: ArrayLike,
    kernels: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingArg = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    output_padding: IntOrPair = 0,
    activation: str | None = None,
    max_products: int | None = None,
) -> ConvTransposeTrace:
    """Trace `activation(F.conv_transpose2d(input, kernels, bias, stride, padding, ...))`.

    `input` is C×H×W, `kernels` C×(O/groups)×kh×kw (PyTorch's transposed weight layout). Each
    input cell (i, j) scatters `x[c, i, j] · w[c, o]` onto the output window starting at
    (i·s − p, j·s − p) with taps d apart; overlapping scatters add up, `padding` crops p rows and
    columns from each border and `output_padding` adds rows/columns at the bottom/right (Dumoulin
    & Visin 2016, §4). `max_products` bounds contributions plus output cells written out.
    """
    _check_activation(activation)
    x = _tensor(input, 3, "input", "C×H×W")
    w = _tensor(kernels, 4, "kernels", "C×O×kh×kw")
    channels, height, width = x.shape
    if w.shape[0] != channels:
        raise CNNCoreError(
            f"a transposed convolution's kernels are C×(O/groups)×kh×kw with C = {channels} input "
            f"channels first, got kernels of shape {list(w.shape)}",
            "kernels",
            code="transposed_kernel_shape",
            ctx={"channels": channels, "shape": shape_text(w.shape)},
        )
    if groups < 1 or channels % groups:
        raise CNNCoreError(
            f"groups ({groups}) must divide the input channels ({channels})", "groups",
            # a transposed layer has groups × (O/groups) output channels, always divisible
            code="groups_must_divide_channels",
            ctx={"groups": groups, "channels": channels, "out_channels": w.shape[1] * groups},
        )  # fmt: skip
    _, out_per_group, kh, kw = w.shape
    out_channels = out_per_group * groups
    group_width = channels // groups
    layer = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    shape = conv2d_shape(
        *x.shape,
        (kh, kw),
        out_channels=out_channels,
        bias=bias is not None,
        **layer,
        transposed=True,
        output_padding=output_padding,
    )
    b = _bias(bias, out_channels)
    out_h, out_w = shape.out_height, shape.out_width
    _check_budget(
        out_channels * (height * width * group_width * kh * kw + out_h * out_w),
        max_products,
        "contributions and output values",
    )
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    pad = shape.padding

    # inputs[o, c'] = x[group(o)·Cg + c']: O×Cg×H×W
    in_channels = _group_channels(out_channels, groups, group_width)
    inputs = x[in_channels]
    # kernel o of group g is w[g·Cg + c', o − g·O/g] for each c' of the group: O×Cg×kh×kw
    weights = (
        w.view(groups, group_width, out_per_group, kh, kw)
        .permute(0, 2, 1, 3, 4)
        .reshape(out_channels, group_width, kh, kw)
    )
    contributions = inputs[:, :, None, None] * weights[..., None, None]  # O×Cg×kh×kw×H×W
    scatter = torch.einsum("ocij,ocab->oabij", inputs, weights)  # O×kh×kw×H×W

    # F.fold adds every scattered kh×kw block into place (col2im); it builds the full,
    # uncropped output, which `padding` then crops and `output_padding` extends with zeros.
    full_h, full_w = (height - 1) * sh + dh * (kh - 1) + 1, (width - 1) * sw + dw * (kw - 1) + 1
    columns = scatter.reshape(1, out_channels * kh * kw, height * width)
    full = F.fold(columns, (full_h, full_w), (kh, kw), dilation=(dh, dw), stride=(sh, sw))[0]
    grown = F.pad(full, (0, max(0, pad.left + out_w - full_w), 0, max(0, pad.top + out_h - full_h)))
    pre_activation = grown[:, pad.top : pad.top + out_h, pad.left : pad.left + out_w]
    pre_activation = pre_activation + b[:, None, None]

    rows = _taps(height, kh, sh, -pad.top, dh)
    cols = _taps(width, kw, sw, -pad.left, dw)
    return ConvTransposeTrace(
        shape=shape,
        rows=rows,
        cols=cols,
        in_channels=in_channels,
        inputs=inputs,
        contributions=contributions,
        scatter=scatter,
        bias=b,
        pre_activation=pre_activation,
        output=_activate(pre_activation, activation),
        activation=activation,
    )
