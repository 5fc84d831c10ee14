"""Convolution arithmetic: output sizes, parameter counts, MACs and the formulas behind them.

The one place in cnnviz that knows how big an output is. The trace, the model summaries, the
receptive fields and the API all ask here. Formulas follow Dumoulin & Visin, "A guide to
convolution arithmetic for deep learning" (2016), and match PyTorch's shape rules exactly
(`torch.nn.Conv2d`, `ConvTranspose2d`, `MaxPool2d` / `AvgPool2d` including `ceil_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnncore.errors import CNNCoreError

__all__ = [
    "AxisPadding",
    "ConvShape",
    "Padding2d",
    "conv2d_shape",
    "conv_output_size",
    "conv_transpose_output_size",
    "pair",
    "pool2d_shape",
    "pool_output_size",
    "resolve_padding",
]

PaddingArg = int | str | tuple[int, int] | list[int]


@dataclass(frozen=True)
class AxisPadding:
    """Zeros added before (top/left) and after (bottom/right) one spatial axis."""

    before: int
    after: int

    @property
    def total(self) -> int:
        return self.before + self.after


@dataclass(frozen=True)
class Padding2d:
    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> AxisPadding:
        return AxisPadding(self.top, self.bottom)

    @property
    def width(self) -> AxisPadding:
        return AxisPadding(self.left, self.right)


def _positive(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CNNCoreError(
            f"{field} must be a positive integer, got {value!r}", field, code="positive_integer"
        )
    return value


def pair(value: int | tuple[int, int] | list[int], field: str) -> tuple[int, int]:
    """An int or an (height, width) pair as a checked pair of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _positive(value, field), _positive(value, field)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _positive(value[0], field), _positive(value[1], field)
    raise CNNCoreError(
        f"{field} must be an integer or a [height, width] pair, got {value!r}",
        field,
        code="integer_or_pair",
    )


def _output_padding_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    values = list(value) if isinstance(value, (tuple, list)) and len(value) == 2 else [value] * 2
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise CNNCoreError(
            f"output_padding must be zero or a positive integer, or a [height, width] pair of "
            f"them, got {value!r}",
            "output_padding",
            code="output_padding_negative",
        )
    return values[0], values[1]


def resolve_padding(
    padding: PaddingArg,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    *,
    transposed: bool = False,
) -> Padding2d:
    """Turn `int`, `[ph, pw]`, `"valid"` or `"same"` into explicit per-side padding.

    `"same"` follows PyTorch: total padding d·(k−1) per axis, the odd extra zero going to the
    bottom/right. It is defined only for stride 1 (otherwise no padding keeps the size) and not for
    transposed convolutions.
    """
    mode = padding.lower() if isinstance(padding, str) else None
    if mode == "valid":
        return Padding2d(0, 0, 0, 0)
    if mode == "same":
        if transposed:
            raise CNNCoreError(
                "padding='same' is undefined for a transposed convolution: it enlarges the input "
                "by design; give the padding as numbers instead",
                "padding",
                code="same_padding_not_transposed",
            )
        if stride != (1, 1):
            raise CNNCoreError(
                f"padding='same' needs stride 1, got stride {stride[0]}×{stride[1]}: with a larger "
                "stride the output is smaller than the input whatever the padding",
                "padding",
                code="same_padding_needs_stride_1",
                ctx={"stride": f"{stride[0]}×{stride[1]}"},
            )
        th, tw = (d * (k - 1) for k, d in zip(kernel_size, dilation, strict=True))
        return Padding2d(th // 2, th - th // 2, tw // 2, tw - tw // 2)
    if isinstance(padding, int) and not isinstance(padding, bool):
        ph = pw = padding
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        ph, pw = padding
    else:  # another word, or neither a number nor a pair
        raise CNNCoreError(
            f"padding must be an integer, a [height, width] pair, 'same' or 'valid', "
            f"got {padding!r}",
            "padding",
            code="padding_form",
        )
    for p in (ph, pw):
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise CNNCoreError(
                f"padding must be zero or a positive integer, got {p!r}",
                "padding",
                code="padding_negative",
            )
    return Padding2d(ph, ph, pw, pw)


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: AxisPadding | int = 0, dilation: int = 1
) -> int:
    """⌊(n + p_before + p_after − d·(k−1) − 1) / s⌋ + 1, the size along one axis."""
    pad = padding if isinstance(padding, AxisPadding) else AxisPadding(padding, padding)
    _positive(size, "input size")
    effective = dilation * (kernel - 1) + 1
    padded = size + pad.total
    if effective > padded:
        dil = (
            f" (dilation {dilation} spreads the {kernel} taps over {effective})"
            if dilation > 1
            else ""
        )
        # The output would have (padded − effective) // stride + 1 ≤ 0 positions.
        raise CNNCoreError(
            f"the kernel (effective size {effective}{dil}) is larger than the padded input "
            f"({size} + {pad.total} padding = {padded}): add padding or use a smaller kernel",
            "kernel_size",
            code="dilated_kernel_too_large" if dilation > 1 else "conv_output_empty",
            ctx={"size": size, "padding": pad.total, "padded": padded, "kernel": kernel,
                 "dilation": dilation, "effective": effective,
                 "output": (padded - effective) // stride + 1},
        )  # fmt: skip
    return (padded - effective) // stride + 1


def conv_transpose_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """(n − 1)·s − 2p + d·(k − 1) + output_padding + 1, as `torch.nn.ConvTranspose2d`."""
    _positive(size, "input size")
    if output_padding < 0:
        raise CNNCoreError(
            "output_padding must be zero or positive", "output_padding",
            code="output_padding_negative",
        )  # fmt: skip
    if output_padding >= max(stride, dilation):
        raise CNNCoreError(
            f"output_padding ({output_padding}) must be smaller than the stride ({stride}) or the "
            f"dilation ({dilation}): it only picks among the sizes a strided convolution maps "
            "to the same input size",
            "output_padding",
            code="output_padding_too_large",
            ctx={"output_padding": output_padding, "stride": stride, "dilation": dilation},
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out <= 0:
        raise CNNCoreError(
            f"the padding ({padding} per side) crops away the whole output "
            f"({out + 2 * padding} before cropping): use less padding",
            "padding",
            code="transposed_output_cropped",
            ctx={"padding": padding, "size": out + 2 * padding, "output": out},
        )
    return out


def pool_output_size(
    size: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Pooling size along one axis, with PyTorch's `ceil_mode` rule.

    With `ceil_mode` the last window may hang over the edge, but it must start inside the input or
    the left padding; otherwise it is dropped (ATen `pooling_output_shape`).
    """
    _positive(size, "input size")
    if padding < 0:
        raise CNNCoreError(
            "padding must be zero or a positive integer", "padding", code="padding_negative"
        )
    if padding > kernel // 2:
        raise CNNCoreError(
            f"pooling padding ({padding}) must be at most half the kernel ({kernel} // 2 = "
            f"{kernel // 2}): a window would otherwise see only padding",
            "padding",
            code="pool_padding_over_half_kernel",
            ctx={"padding": padding, "kernel": kernel, "le": kernel // 2},
        )
    effective = dilation * (kernel - 1) + 1
    span = size + 2 * padding - effective
    # ATen: ⌊(span + (s − 1 if ceil_mode)) / s⌋ + 1 with floor division, so in ceil mode a window
    # longer than the padded input is still allowed when it starts inside it.
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= size + padding:
        out -= 1
    if out <= 0:
        raise CNNCoreError(
            f"the pooling window ({effective}) is larger than the padded input "
            f"({size} + {2 * padding} = {size + 2 * padding}): use a smaller kernel or dilation",
            "kernel_size",
            code="pool_output_empty",
            ctx={"size": size, "padding": 2 * padding, "padded": size + 2 * padding,
                 "kernel": kernel, "dilation": dilation, "effective": effective, "output": out},
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class ConvShape:
    """What a (transposed) convolution layer does to a C×H×W input."""

    in_channels: int
    in_height: int
    in_width: int
    out_channels: int
    out_height: int
    out_width: int
    padding: Padding2d
    params: int
    macs: int
    formula: dict[str, str]


def conv2d_shape(
    channels: int,
    height: int,
    width: int,
    kernel_size: int | tuple[int, int] | list[int],
    *,
    out_channels: int = 1,
    stride: int | tuple[int, int] | list[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | tuple[int, int] | list[int] = 1,
    groups: int = 1,
    bias: bool = True,
    transposed: bool = False,
    output_padding: int | tuple[int, int] | list[int] = 0,
) -> ConvShape:
    """Output shape, parameter count, MACs and the substituted formulas of one conv layer.

    Parameters: O·(C/g)·kh·kw (+O bias) for a convolution; C·(O/g)·kh·kw (+O) for a transposed
    one (PyTorch stores its weight as C×(O/g)×kh×kw). MACs count one multiply-accumulate per
    weight per output position: H'·W'·O·(C/g)·kh·kw; for a transposed convolution, per input
    position: H·W·C·(O/g)·kh·kw (every input cell scatters a whole kernel, cropped or not).
    """
    _positive(channels, "channels")
    _positive(height, "height")
    _positive(width, "width")
    _positive(out_channels, "out_channels")
    _positive(groups, "groups")
    kernel = pair(kernel_size, "kernel_size")
    strides = pair(stride, "stride")
    dilations = pair(dilation, "dilation")
    if channels % groups or out_channels % groups:
        raise CNNCoreError(
            f"groups ({groups}) must divide both the input channels ({channels}) and the output "
            f"channels ({out_channels}): each group convolves its own slice of channels",
            "groups",
            code="groups_must_divide_channels",
            ctx={"groups": groups, "channels": channels, "out_channels": out_channels},
        )
    pads = resolve_padding(padding, kernel, strides, dilations, transposed=transposed)
    if transposed:
        if pads.top != pads.bottom or pads.left != pads.right:
            raise CNNCoreError(
                "a transposed convolution takes symmetric padding", "padding",
                code="transposed_padding_symmetric",
            )  # fmt: skip
        out_pads = _output_padding_pair(output_padding)
        args = zip((height, width), kernel, strides, (pads.top, pads.left), dilations, out_pads,
                   strict=True)
        out_h, out_w = (conv_transpose_output_size(*a) for a in args)
        params = channels * (out_channels // groups) * kernel[0] * kernel[1]
        macs = height * width * channels * (out_channels // groups) * kernel[0] * kernel[1]
        formula = {
            axis: (
                f"{o} = ({n} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1 = {out}"
            )
            for axis, o, n, s, p, d, k, op, out in (
                ("height", "H_out", height, strides[0], pads.top, dilations[0], kernel[0],
                 out_pads[0], out_h),
                ("width", "W_out", width, strides[1], pads.left, dilations[1], kernel[1],
                 out_pads[1], out_w),
            )
        }
        formula["general"] = "out = (in − 1)·s − 2·p + d·(k − 1) + output_padding + 1"
    else:
        if _output_padding_pair(output_padding) != (0, 0):
            raise CNNCoreError("output_padding applies only to transposed convolutions",
                               "output_padding", code="output_padding_only_transposed")
        out_h = conv_output_size(height, kernel[0], strides[0], pads.height, dilations[0])
        out_w = conv_output_size(width, kernel[1], strides[1], pads.width, dilations[1])
        params = out_channels * (channels // groups) * kernel[0] * kernel[1]
        macs = out_h * out_w * out_channels * (channels // groups) * kernel[0] * kernel[1]
        formula = {
            axis: f"{o} = ⌊({n} + {pb} + {pa} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = {out}"
            for axis, o, n, pb, pa, d, k, s, out in (
                ("height", "H_out", height, pads.top, pads.bottom, dilations[0], kernel[0],
                 strides[0], out_h),
                ("width", "W_out", width, pads.left, pads.right, dilations[1], kernel[1],
                 strides[1], out_w),
            )
        }
        formula["general"] = "out = ⌊(in + p_before + p_after − d·(k − 1) − 1) / s⌋ + 1"
    if bias:
        params += out_channels
    formula["params"] = (
        f"params = {out_channels}·({channels}/{groups})·{kernel[0]}·{kernel[1]}"
        + (f" + {out_channels}" if bias else "")
        + f" = {params}"
        if not transposed
        else f"params = {channels}·({out_channels}/{groups})·{kernel[0]}·{kernel[1]}"
        + (f" + {out_channels}" if bias else "")
        + f" = {params}"
    )
    return ConvShape(channels, height, width, out_channels, out_h, out_w, pads, params, macs,
                     formula)


def pool2d_shape(
    height: int,
    width: int,
    kernel_size: int | tuple[int, int] | list[int],
    stride: int | tuple[int, int] | list[int] | None = None,
    padding: int | tuple[int, int] | list[int] = 0,
    dilation: int | tuple[int, int] | list[int] = 1,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """(H_out, W_out) of a 2-D pooling layer; the stride defaults to the kernel size, as torch."""
    kernel = pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else pair(stride, "stride")
    dilations = pair(dilation, "dilation")
    if isinstance(padding, str) and padding.lower() == "same":
        # torch's pooling layers take numbers only; 'same' would need asymmetric padding.
        raise CNNCoreError(
            "pooling takes its padding as numbers, not 'same'", "padding",
            code="pool_padding_not_same",
        )  # fmt: skip
    pads = resolve_padding(padding, kernel)
    return (
        pool_output_size(height, kernel[0], strides[0], pads.top, dilations[0], ceil_mode),
        pool_output_size(width, kernel[1], strides[1], pads.left, dilations[1], ceil_mode),
    )
