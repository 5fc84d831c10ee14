"""Pooling traces: every window, value, choice and gradient route of a 2-D pooling layer.

Max, average and L2-norm pooling (Boureau, Ponce & LeCun, "A Theoretical Analysis of Feature
Pooling in Visual Recognition", ICML 2010) and global average pooling (Lin, Chen & Yan, "Network In
Network", 2014). Shapes come from `cnncore.arithmetic.pool2d_shape`; the numbers follow PyTorch:

* max pooling pads with −∞ and, among equal values, keeps the first in row-major window order
  (ATen's `cpu_max_pool` replaces the running max only on a strictly greater value);
* average pooling divides as `F.avg_pool2d`: with `count_include_pad` the divisor counts the
  zero padding, but a `ceil_mode` window hanging past the padding counts only up to its edge;
* L2 pooling is √(Σ x²) over the window, `F.lp_pool2d` with p = 2. Torch has no padding for
  `lp_pool2d`; here padding means zeros, as `F.pad` followed by `lp_pool2d`. Where a `ceil_mode`
  window hangs past the input, torch's `lp_pool2d` (built on `avg_pool2d`) returns
  √(k²/n · Σ x²) for a window of n cells; this trace keeps the plain norm √(Σ x²).

Everything is computed at once on strided views of the padded input, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from cnncore.arithmetic import pair, pool2d_shape, resolve_padding
from cnncore.errors import CNNCoreError, shape_text

__all__ = [
    "POOL_KINDS",
    "PoolBackward",
    "PoolStep",
    "PoolTrace",
    "pool_backward",
    "trace_pool2d",
]

POOL_KINDS = ("max", "avg", "l2", "global_avg")


@dataclass(frozen=True)
class PoolStep:
    """One output cell: its window in input coordinates and how its value arose.

    `rows`/`cols` are input indices (negative or ≥ size: padding); `values` holds the padding value
    where `padded` (None for max pooling, whose padding is −∞); `weights` are the coefficients with
    output = Σ weight · value (average, L2); `chosen` is the (row, col) of the max.
    """

    channel: int
    y: int
    x: int
    rows: list[int]
    cols: list[int]
    padded: list[list[bool]]
    values: list[list[float | None]]
    value: float
    chosen: tuple[int, int] | None
    weights: list[list[float]] | None
    divisor: float | None


@dataclass(frozen=True)
class PoolTrace:
    """A whole pooling layer written out; tensors are float64 with the shapes noted."""

    kind: str
    input: torch.Tensor  # C×H×W
    output: torch.Tensor  # C×H'×W'
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool
    formula: dict[str, str]
    rows: torch.Tensor  # H'×kh input row under each window row
    cols: torch.Tensor  # W'×kw input column under each window column
    values: torch.Tensor  # C×H'×W'×kh×kw, padding value where padded
    argmax: torch.Tensor | None  # C×H'×W' row-major index of the max in its window; max only
    divisor: torch.Tensor | None  # H'×W'; average pooling only

    # Derived on first access: a trace that is only looked at numerically never builds them.
    @cached_property
    def padded(self) -> torch.Tensor:
        """H'×W'×kh×kw, True where the window cell lies outside the input."""
        height, width = self.input.shape[1:]
        row_out = (self.rows < 0) | (self.rows >= height)
        col_out = (self.cols < 0) | (self.cols >= width)
        return row_out[:, None, :, None] | col_out[None, :, None, :]

    @cached_property
    def counted(self) -> torch.Tensor | None:
        """H'×W'×kh×kw, True for the cells an average divides by; average pooling only."""
        if self.divisor is None:
            return None
        (height, width), (pad_h, pad_w) = self.input.shape[1:], self.padding
        include = self.count_include_pad
        return (_avg_counted(height, self.rows, pad_h, include)[:, None, :, None]
                & _avg_counted(width, self.cols, pad_w, include)[None, :, None, :])

    @cached_property
    def chosen(self) -> torch.Tensor | None:
        """C×H'×W'×2 input (row, col) of each window's max; max pooling only."""
        if self.argmax is None:
            return None
        kw = self.kernel_size[1]
        out_h, out_w = self.output.shape[1:]
        y_index = torch.arange(out_h)[None, :, None]
        x_index = torch.arange(out_w)[None, None, :]
        return torch.stack(
            (self.rows[y_index, self.argmax // kw], self.cols[x_index, self.argmax % kw]), dim=-1
        )

    @cached_property
    def coefficients(self) -> torch.Tensor:
        """C×H'×W'×kh×kw: ∂output/∂cell, so that output = Σ coefficient · value per window.

        Max: 1 at the chosen cell; average: 1/divisor on the counted cells; L2: v/‖v‖ (zero for an
        all-zero window, where torch's subgradient is 0 too).
        """
        if self.kind == "max":
            flat = torch.zeros(*self.output.shape, self.values[0, 0, 0].numel(),
                               dtype=torch.float64)
            return flat.scatter_(-1, self.argmax[..., None], 1.0).reshape(self.values.shape)
        if self.kind == "l2":
            norm = self.output[..., None, None]
            return torch.where(norm > 0, self.values / torch.where(norm > 0, norm, 1.0), 0.0)
        return (self.counted / self.divisor[..., None, None]).expand_as(self.values)

    def steps(self) -> list[PoolStep]:
        """One step per output cell, ordered channel, y, x (as the convolution trace)."""
        channels, out_h, out_w = self.output.shape
        rows, cols = self.rows.tolist(), self.cols.tolist()
        padded = self.padded.tolist()
        values = self.values.tolist()
        output = self.output.tolist()
        is_max = self.kind == "max"
        weights = None if is_max else self.coefficients.tolist()
        chosen = self.chosen.tolist() if self.chosen is not None else None
        divisor = self.divisor.tolist() if self.divisor is not None else None
        steps = []
        for c in range(channels):
            for y in range(out_h):
                for x in range(out_w):
                    cell_padded = padded[y][x]
                    cell_values = values[c][y][x]
                    if is_max:  # JSON has no −∞: a padded cell of a max window is shown empty
                        cell_values = [
                            [None if p else v for v, p in zip(vr, pr, strict=True)]
                            for vr, pr in zip(cell_values, cell_padded, strict=True)
                        ]
                    steps.append(PoolStep(
                        channel=c, y=y, x=x, rows=rows[y], cols=cols[x], padded=cell_padded,
                        values=cell_values, value=output[c][y][x],
                        chosen=tuple(chosen[c][y][x]) if chosen is not None else None,
                        weights=weights[c][y][x] if weights is not None else None,
                        divisor=divisor[y][x] if divisor is not None else None,
                    ))
        return steps


@dataclass(frozen=True)
class PoolBackward:
    """Where an upstream gradient goes: per output cell and summed into the input."""

    grad_output: torch.Tensor  # C×H'×W'
    grad_input: torch.Tensor  # C×H×W
    amounts: torch.Tensor  # C×H'×W'×kh×kw, share each window cell receives (0 on padding)


def _as_input(values: torch.Tensor | list) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise CNNCoreError(
            "input must be a C×H×W array of numbers", "input", code="feature_map_shape"
        ) from exc
    if tensor.dim() != 3 or tensor.numel() == 0:
        raise CNNCoreError(
            f"input must be a non-empty C×H×W array, got shape {list(tensor.shape)}",
            "input",
            code="feature_map_shape",
        )
    # A finite sum proves every value finite and costs a tenth of isfinite(); only a sum that
    # overflowed or met NaN/inf needs the element-wise look.
    if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        raise CNNCoreError("input contains NaN or infinity", "input", code="finite_numbers")
    return tensor


def _axis_windows(size: int, out: int, kernel: int, stride: int, pad: int) -> torch.Tensor:
    """out×kernel input indices under each window along one axis."""
    starts = torch.arange(out) * stride - pad
    return starts[:, None] + torch.arange(kernel)[None, :]


def _avg_counted(size: int, windows: torch.Tensor, pad: int, include_pad: bool) -> torch.Tensor:
    """out×kernel mask of the window cells `avg_pool2d` counts along one axis.

    ATen clips a window to [−pad, size + pad) for the divisor with `count_include_pad`, and to
    [0, size) without it; a ceil-mode overhang past the padding is never counted.
    """
    low, high = (-pad, size + pad) if include_pad else (0, size)
    return (windows >= low) & (windows < high)


def _formula(size: tuple[int, int], out: tuple[int, int], kernel: tuple[int, int],
             stride: tuple[int, int], pad: tuple[int, int], ceil_mode: bool) -> dict[str, str]:
    left, right = ("⌈", "⌉") if ceil_mode else ("⌊", "⌋")
    formula = {}
    for axis, name, n, o, k, s, p in zip(("height", "width"), ("H_out", "W_out"), size, out,
                                         kernel, stride, pad, strict=True):
        text = f"{name} = {left}({n} + 2·{p} − {k}) / {s}{right} + 1"
        full = -(-(n + 2 * p - k) // s) + 1 if ceil_mode else (n + 2 * p - k) // s + 1
        if full != o:  # ceil mode drops a last window that would start in the right padding
            text += " − 1"
        formula[axis] = f"{text} = {o}"
    formula["general"] = f"out = {left}(in + 2·p − k) / s{right} + 1"
    if ceil_mode:
        formula["general"] += " (− 1 if the last window would start in the right padding)"
    return formula


def trace_pool2d(
    values: torch.Tensor | list,
    kind: str = "max",
    kernel_size: int | tuple[int, int] | list[int] = 2,
    stride: int | tuple[int, int] | list[int] | None = None,
    padding: int | tuple[int, int] | list[int] = 0,
    *,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    max_cells: int | None = None,
) -> PoolTrace:
    """Trace `kind` pooling of a C×H×W input (`global_avg`: one window covering everything).

    The stride defaults to the kernel size, as `torch.nn.MaxPool2d`. Equals `F.max_pool2d`
    (values and `return_indices`), `F.avg_pool2d`, `F.lp_pool2d(norm_type=2)` and
    `F.adaptive_avg_pool2d(x, 1)`; see the module docstring for the one lp_pool2d difference.
    `max_cells` bounds the window cells written out (C·H'·W'·kh·kw), refused before any work.
    """
    if kind not in POOL_KINDS:
        raise CNNCoreError(f"kind must be one of {', '.join(POOL_KINDS)}, got {kind!r}", "kind",
                           code="enum", ctx={"expected": list(POOL_KINDS)})
    x = _as_input(values)
    channels, height, width = x.shape
    if kind == "global_avg":  # one window over the whole map, as F.adaptive_avg_pool2d(x, 1)
        kernel_size, stride, padding, ceil_mode = (height, width), None, 0, False
    kernel = pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else pair(stride, "stride")
    if isinstance(padding, str):
        raise CNNCoreError("pooling padding must be an integer or a [height, width] pair",
                           "padding", code="pool_padding_not_same")
    pads = resolve_padding(padding, kernel)
    out_h, out_w = pool2d_shape(height, width, kernel, strides, padding, ceil_mode=ceil_mode)
    pad_h, pad_w = pads.top, pads.left
    cells = channels * out_h * out_w * kernel[0] * kernel[1]
    if max_cells is not None and cells > max_cells:
        raise CNNCoreError(
            f"this trace would write out {cells:,} window cells ({channels}×{out_h}×{out_w} "
            f"windows of {kernel[0]}×{kernel[1]}), more than the {max_cells:,} allowed: use a "
            "smaller input, fewer channels or a larger stride",
            "input",
            code="pool_trace_too_large",
            ctx={"cells": cells, "limit": max_cells},
        )

    # Pad enough for every window (a ceil-mode window may hang past the padding) and no more.
    span_h, span_w = (out_h - 1) * strides[0] + kernel[0], (out_w - 1) * strides[1] + kernel[1]
    fill = float("-inf") if kind == "max" else 0.0
    padded_x = torch.nn.functional.pad(
        x, (pad_w, span_w - width - pad_w, pad_h, span_h - height - pad_h), value=fill
    )
    windows = padded_x.unfold(1, kernel[0], strides[0]).unfold(2, kernel[1], strides[1])
    rows = _axis_windows(height, out_h, kernel[0], strides[0], pad_h)
    cols = _axis_windows(width, out_w, kernel[1], strides[1], pad_w)
    # im2col (C × kh·kw × L, contiguous) is the fastest layout to reduce each window over.
    columns = torch.nn.functional.unfold(padded_x[:, None], kernel, stride=strides)
    argmax = divisor = None
    if kind == "max":
        output, argmax = columns.max(dim=1)  # first maximal value, as ATen's strict `>` scan
        output, argmax = output.view(channels, out_h, out_w), argmax.view(channels, out_h, out_w)
    elif kind == "l2":
        output = columns.square().sum(dim=1).sqrt().view(channels, out_h, out_w)
    else:
        # The counted cells form a rectangle: the divisor is (rows counted) × (columns counted).
        per_row = _avg_counted(height, rows, pad_h, count_include_pad).sum(dim=1)
        per_col = _avg_counted(width, cols, pad_w, count_include_pad).sum(dim=1)
        divisor = (per_row[:, None] * per_col[None, :]).to(torch.float64)
        output = columns.sum(dim=1).view(channels, out_h, out_w) / divisor

    return PoolTrace(
        kind=kind, input=x, output=output, kernel_size=kernel, stride=strides,
        padding=(pad_h, pad_w), ceil_mode=ceil_mode, count_include_pad=count_include_pad,
        formula=_formula((height, width), (out_h, out_w), kernel, strides, (pad_h, pad_w),
                         ceil_mode),
        rows=rows, cols=cols, values=windows, argmax=argmax, divisor=divisor,
    )


def pool_backward(trace: PoolTrace, grad_output: torch.Tensor | list) -> PoolBackward:
    """Route an upstream gradient through a traced pooling layer (the chain rule per window).

    Max sends each output gradient to its argmax only; average spreads it as 1/divisor over the
    counted cells; L2 sends x/‖x‖ of it to each cell. Gradients meeting in overlapping windows
    add up; gradient reaching padding is dropped. Equals torch autograd through the same layer.
    """
    try:
        grad = torch.as_tensor(grad_output, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise CNNCoreError(
            "grad_output must be an array of numbers", "grad_output", code="numbers_list"
        ) from exc
    if grad.shape != trace.output.shape:
        raise CNNCoreError(
            f"grad_output must have the output's shape {list(trace.output.shape)}, "
            f"got {list(grad.shape)}",
            "grad_output",
            code="gradient_shape_mismatch",
            ctx={"expected_shape": shape_text(trace.output.shape),
                 "shape": shape_text(grad.shape)},
        )  # fmt: skip
    if not torch.isfinite(grad).all():
        raise CNNCoreError(
            "grad_output contains NaN or infinity", "grad_output", code="finite_numbers"
        )
    amounts = grad[..., None, None] * trace.coefficients
    amounts = torch.where(trace.padded, 0.0, amounts)
    channels, height, width = trace.input.shape
    out_h, out_w, kh, kw = trace.padded.shape
    (sh, sw), (ph, pw) = trace.stride, trace.padding
    span_h, span_w = (out_h - 1) * sh + kh, (out_w - 1) * sw + kw
    columns = amounts.permute(0, 3, 4, 1, 2).reshape(channels, kh * kw, out_h * out_w)
    folded = torch.nn.functional.fold(columns, (span_h, span_w), (kh, kw), stride=(sh, sw))
    # The windows may stop short of the bottom/right edge: rows they never reach get nothing.
    folded = torch.nn.functional.pad(
        folded[:, 0], (0, max(0, pw + width - span_w), 0, max(0, ph + height - span_h))
    )
    grad_input = folded[:, ph:ph + height, pw:pw + width]
    return PoolBackward(grad_output=grad, grad_input=grad_input, amounts=amounts)
