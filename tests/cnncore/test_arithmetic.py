"""Convolution and pooling arithmetic against torch's real layers: shapes, parameters, MACs,
the substituted formulas, and the refusals (with messages) where torch refuses too."""

import ast
import operator
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from cnncore.arithmetic import (
    Padding2d,
    conv2d_shape,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    pool2d_shape,
    pool_output_size,
    resolve_padding,
)
from cnncore.errors import CNNCoreError

PROPERTY = settings(max_examples=100, deadline=None)

sizes = st.integers(1, 9)
pairs = st.tuples(st.integers(1, 4), st.integers(1, 4))
paddings = st.one_of(
    st.integers(0, 3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.sampled_from(["same", "valid"]),
)


def _torch_shape(run) -> tuple[int, ...] | None:
    """The output shape torch gives, or None where torch refuses or gives an empty tensor."""
    try:
        with warnings.catch_warnings():  # 'same' with even kernels: a copy warning, not an error
            warnings.simplefilter("ignore", UserWarning)
            shape = tuple(run().shape[1:])
    except RuntimeError:
        return None
    return None if 0 in shape else shape


def _ours(run) -> tuple[tuple[int, ...] | None, CNNCoreError | None]:
    try:
        return run(), None
    except CNNCoreError as error:
        return None, error


@st.composite
def layers(draw: st.DrawFn) -> dict:
    groups = draw(st.sampled_from([1, 2, 3]))
    return {
        "channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(1, 2)),
        "groups": groups,
        "height": draw(sizes),
        "width": draw(sizes),
        "kernel_size": draw(pairs),
        "stride": draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        "dilation": draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
        "padding": draw(paddings),
        "bias": draw(st.booleans()),
    }


def _shape_of(layer: dict, **extra):
    config = dict(layer)
    channels, height, width = config.pop("channels"), config.pop("height"), config.pop("width")
    shape = conv2d_shape(channels, height, width, config.pop("kernel_size"), **config, **extra)
    return shape, (shape.out_channels, shape.out_height, shape.out_width)


def _assert_layer_matches(ours, error, expected, module: torch.nn.Module, x: torch.Tensor) -> None:
    assert error is None, error
    shape, out = ours
    assert out == expected
    assert shape.params == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as flops:
        module(x)
    assert 2 * shape.macs == flops.get_total_flops()  # torch counts a MAC as two FLOPs


@PROPERTY
@given(layer=layers())
def test_conv2d_shape_matches_torch(layer: dict) -> None:
    module = torch.nn.Conv2d(
        layer["channels"],
        layer["out_channels"],
        layer["kernel_size"],
        layer["stride"],
        layer["padding"] if layer["stride"] == (1, 1) or layer["padding"] != "same" else 0,
        layer["dilation"],
        layer["groups"],
        layer["bias"],
    )
    x = torch.zeros(1, layer["channels"], layer["height"], layer["width"])
    ours, error = _ours(lambda: _shape_of(layer))
    if layer["padding"] == "same" and layer["stride"] != (1, 1):
        assert error is not None and error.field == "padding"  # torch refuses it at construction
        return
    expected = _torch_shape(lambda: module(x))
    if expected is None:
        assert error is not None and error.field == "kernel_size", error
        return
    _assert_layer_matches(ours, error, expected, module, x)


@PROPERTY
@given(layer=layers(), output_padding=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_conv_transpose2d_shape_matches_torch(layer: dict, output_padding) -> None:
    layer = {**layer, "padding": layer["padding"] if layer["padding"] != "same" else 1}
    padding = 0 if layer["padding"] == "valid" else layer["padding"]
    ours, error = _ours(lambda: _shape_of(layer, transposed=True, output_padding=output_padding))
    x = torch.zeros(1, layer["channels"], layer["height"], layer["width"])
    try:
        module = torch.nn.ConvTranspose2d(
            layer["channels"],
            layer["out_channels"],
            layer["kernel_size"],
            layer["stride"],
            padding,
            output_padding,
            layer["groups"],
            layer["bias"],
            layer["dilation"],
        )
    except ValueError:
        module = None
    expected = None if module is None else _torch_shape(lambda: module(x))
    if expected is None:
        assert error is not None and error.field in ("output_padding", "padding"), error
        return
    _assert_layer_matches(ours, error, expected, module, x)


def _evaluate(expression: str) -> int:
    """Integer arithmetic of a formula as printed (·, −, ⌊…⌋ / s), without eval."""
    python = expression.replace("·", "*").replace("−", "-").replace("⌊", "(").replace("⌋", ")")
    python = python.replace(") /", ") //")
    ops = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv,
        ast.Div: operator.floordiv,
    }

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp):
            return ops[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        assert isinstance(node, ast.Constant) and isinstance(node.value, int), ast.dump(node)
        return node.value

    return walk(ast.parse(python, mode="eval").body)


@PROPERTY
@given(layer=layers(), transposed=st.booleans())
def test_formulas_substitute_the_numbers(layer: dict, transposed: bool) -> None:
    if transposed:
        layer = {**layer, "padding": 0}
    ours, error = _ours(lambda: _shape_of(layer, transposed=transposed))
    if error is not None:
        return
    shape, (_, out_h, out_w) = ours
    for axis, size in (("height", out_h), ("width", out_w)):
        lhs, middle, result = shape.formula[axis].split(" = ")
        assert lhs == ("H_out" if axis == "height" else "W_out")
        assert _evaluate(middle) == size == int(result)
    params_middle, params_result = shape.formula["params"].split(" = ")[1:]
    params_middle = params_middle.replace("/", "//")
    assert _evaluate(params_middle) == shape.params == int(params_result)
    assert set(shape.formula) == {"height", "width", "general", "params"}


@PROPERTY
@given(
    height=sizes,
    width=sizes,
    kernel=pairs,
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    ceil_mode=st.booleans(),
    average=st.booleans(),
)
def test_pool2d_shape_matches_torch(
    height, width, kernel, stride, padding, dilation, ceil_mode, average
) -> None:
    if average:
        dilation = (1, 1)  # AvgPool2d has no dilation
    x = torch.zeros(1, 1, height, width)
    if average:
        expected = _torch_shape(lambda: F.avg_pool2d(x, kernel, stride, padding, ceil_mode))
    else:
        expected = _torch_shape(
            lambda: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
        )
    ours, error = _ours(
        lambda: pool2d_shape(height, width, kernel, stride, padding, dilation, ceil_mode)
    )
    if expected is None:
        assert error is not None and error.field in ("padding", "kernel_size"), error
        return
    assert error is None, error
    assert (1, *ours) == expected


def test_same_padding_follows_torch_with_the_odd_zero_at_the_end() -> None:
    # even kernel 4 with dilation 1: total 3, one before and two after (torch's _conv_forward)
    assert resolve_padding("same", (4, 3), dilation=(1, 2)) == Padding2d(1, 2, 2, 2)
    shape = conv2d_shape(1, 5, 6, (4, 3), padding="same", dilation=(1, 2))
    assert (shape.out_height, shape.out_width) == (5, 6)
    assert resolve_padding("VALID", (3, 3)) == Padding2d(0, 0, 0, 0)
    assert resolve_padding([1, 2], (3, 3)) == Padding2d(1, 1, 2, 2)


def test_single_axis_helpers() -> None:
    assert conv_output_size(7, 3, 2, 1) == 4
    assert conv_output_size(5, 3, 1, 0, dilation=2) == 1
    assert conv_transpose_output_size(4, 3, 2, 1, 1, 1) == 8
    assert pool_output_size(5, 2, 2, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2) == 2
    assert pair(3, "stride") == (3, 3) and pair([2, 1], "stride") == (2, 1)


def test_formula_text_reads_like_the_textbook() -> None:
    shape = conv2d_shape(3, 32, 32, 5, out_channels=6, stride=1, padding=2)
    assert shape.formula["height"] == "H_out = ⌊(32 + 2 + 2 − 1·(5 − 1) − 1) / 1⌋ + 1 = 32"
    assert shape.formula["params"] == "params = 6·(3/1)·5·5 + 6 = 456"
    transposed = conv2d_shape(1, 3, 3, 3, stride=2, padding=1, transposed=True, output_padding=1)
    assert transposed.formula["width"] == "W_out = (3 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 6"


@pytest.mark.parametrize(
    ("call", "field", "why"),
    [
        (lambda: conv2d_shape(1, 4, 4, 7), "kernel_size", r"larger than the padded input \(4 \+ 0"),
        (lambda: conv2d_shape(1, 5, 5, 3, dilation=3), "kernel_size", "dilation 3 spreads"),
        (lambda: conv2d_shape(1, 4, 4, 3, stride=2, padding="same"), "padding", "needs stride 1"),
        (
            lambda: conv2d_shape(1, 4, 4, 3, padding="same", transposed=True),
            "padding",
            "undefined for a transposed",
        ),
        (lambda: conv2d_shape(1, 4, 4, 3, padding="full"), "padding", "'same' or 'valid'"),
        (lambda: conv2d_shape(1, 4, 4, 3, padding=-1), "padding", "zero or a positive"),
        (lambda: conv2d_shape(1, 4, 4, 3, padding=[1, 2, 3]), "padding", "pair"),
        (lambda: conv2d_shape(0, 4, 4, 3), "channels", "positive integer"),
        (lambda: conv2d_shape(1, -4, 4, 3), "height", "positive integer"),
        (lambda: conv2d_shape(1, 4, 4, 0), "kernel_size", "positive integer"),
        (lambda: conv2d_shape(1, 4, 4, [3, 3, 3]), "kernel_size", "pair"),
        (lambda: conv2d_shape(1, 4, 4, 3, stride=0), "stride", "positive integer"),
        (lambda: conv2d_shape(1, 4, 4, 3, dilation=True), "dilation", "integer or a"),
        (lambda: conv2d_shape(3, 4, 4, 3, groups=2), "groups", "must divide both"),
        (lambda: conv2d_shape(4, 4, 4, 3, groups=2, out_channels=3), "groups", "must divide"),
        (
            lambda: conv2d_shape(1, 4, 4, 3, output_padding=1),
            "output_padding",
            "only to transposed",
        ),
        (
            lambda: conv2d_shape(1, 4, 4, 3, stride=2, transposed=True, output_padding=2),
            "output_padding",
            "smaller than the stride",
        ),
        (
            lambda: conv2d_shape(1, 4, 4, 3, stride=2, transposed=True, output_padding=[1, -1]),
            "output_padding",
            "zero or a positive",
        ),
        (
            lambda: conv2d_shape(1, 4, 4, 3, stride=2, transposed=True, output_padding=[1.5, 0]),
            "output_padding",
            "zero or a positive",
        ),
        (
            lambda: conv2d_shape(1, 1, 1, 1, padding=1, transposed=True),
            "padding",
            "crops away the whole output",
        ),
        (lambda: pool2d_shape(4, 4, 2, padding=2), "padding", "at most half the kernel"),
        (lambda: pool2d_shape(4, 4, 7), "kernel_size", "larger than the padded input"),
        (lambda: pool2d_shape(4, 4, 3, stride=2, padding="same"), "padding", "numbers"),
        (lambda: pool2d_shape(4, 4, 3, stride=0), "stride", "positive integer"),
    ],
)
def test_impossible_configurations_say_why(call, field: str, why: str) -> None:
    with pytest.raises(CNNCoreError) as error:
        call()
    assert error.value.field == field
    assert re.search(why, str(error.value)), str(error.value)


def test_ceil_mode_keeps_a_window_that_starts_inside() -> None:
    # torch keeps one window of 13 over 9 rows in ceil mode (it starts inside the input)
    assert pool2d_shape(9, 9, 5, stride=5, dilation=3, ceil_mode=True) == (1, 1)
    assert tuple(F.max_pool2d(torch.zeros(1, 9, 9), 5, 5, 0, 3, True).shape[1:]) == (1, 1)
    with pytest.raises(CNNCoreError):
        pool2d_shape(9, 9, 5, stride=5, dilation=3)
