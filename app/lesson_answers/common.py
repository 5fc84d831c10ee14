"""What every worked answer is made of: the `Answer` record, numbers written the same way in
Korean and English, and small helpers the solvers share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnncore.receptive_field import receptive_fields

Number = int | float


@dataclass(frozen=True)
class Answer:
    """One part of a worked answer."""

    label: str  # catalogue key under "lessons.answer."
    value: str  # as shown; the same in every language
    exact: Number | tuple  # the machine value behind `value`
    work: tuple[str, ...]  # the formula with the numbers substituted, line by line


# --- number formatting (identical in Korean and English) --------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def num(value: Number, digits: int = 4) -> str:
    """12,345 for integers; up to `digits` significant decimals; a×10⁻ⁿ for tiny values."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        text = f"{int(value):,}"
    elif value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    else:
        places = max(0, digits - 1 - math.floor(math.log10(abs(value)))) if value else 0
        text = f"{value:,.{places}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text.replace("-", "−")


def term(value: Number) -> str:
    """A factor in a product: negative numbers in brackets, as written by hand."""
    text = num(value)
    return f"({text})" if value < 0 else text


def shape_text(*sizes: int) -> str:
    return "×".join(str(s) for s in sizes)


def matrix_text(rows: list[list[Number]]) -> str:
    return "[" + ", ".join("[" + ", ".join(num(v) for v in row) + "]" for row in rows) + "]"


def percent(part: Number, whole: Number) -> str:
    return f"{num(100 * part / whole, 3)}%"


def hwc(shape) -> tuple[int, int, int]:
    """(H, W, C) of a conv layer's output, as the questions state sizes."""
    return shape.out_height, shape.out_width, shape.out_channels


def expect(actual, stated, what: str) -> None:
    """The numbers a question states must be the ones the core works with."""
    if tuple(actual) != tuple(stated):
        raise ValueError(f"the question states {what} {stated}, cnncore has {actual}")


def stack_fields(dilations: list[int], kernel: int, strides: list[int] | None = None):
    strides = strides or [1] * len(dilations)
    with torch.device("meta"):
        layers = [
            nn.Conv2d(1, 1, kernel, stride=s, dilation=d, padding=d * (kernel // 2))
            for d, s in zip(dilations, strides, strict=True)
        ]
    fields = receptive_fields(nn.Sequential(*layers), (1, 64, 64))
    return [fields[str(i)].height for i in range(len(layers))]


def hwc_text(shape: tuple[int, ...]) -> str:
    channels, *spatial = shape
    return shape_text(*spatial, channels)


def params_line(shape, kernel: int, bias: bool) -> str:
    """params = O·(k·k·C + 1), the count lesson "channels-params" teaches (O·k·k·C without bias)."""
    o, c = shape.out_channels, shape.in_channels
    expect([o * (kernel * kernel * c + bias)], [shape.params], "the parameter count")
    if bias:
        return f"params = O·(k·k·C + 1) = {o}·({kernel}·{kernel}·{c} + 1) = {num(shape.params)}"
    return f"params = O·k·k·C = {o}·{kernel}·{kernel}·{c} = {num(shape.params)}"
