"""Step traces against torch: outputs equal F.conv2d / F.conv_transpose2d, and every step's
window, products and sums rebuild those outputs."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncore.errors import CNNCoreError
from cnncore.trace import ACTIVATIONS, trace_conv2d, trace_conv_transpose2d

PROPERTY = settings(max_examples=60, deadline=None)
TOL = {"rtol": 1e-12, "atol": 1e-12}


def _activate(values: torch.Tensor, activation: str | None) -> torch.Tensor:
    # The torch modules a network would use, independent of cnncore's table.
    modules = {
        None: torch.nn.Identity(),
        "relu": torch.nn.ReLU(),
        "sigmoid": torch.nn.Sigmoid(),
        "tanh": torch.nn.Tanh(),
        "leaky_relu": torch.nn.LeakyReLU(),
    }
    return modules[activation](values)


@st.composite
def conv_configs(draw: st.DrawFn, transposed: bool = False) -> dict:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans())
    group_in = 1 if depthwise else draw(st.integers(1, 3))
    group_out = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    choices = ["int", "pair", "valid"] + ([] if transposed else ["same"])
    mode = draw(st.sampled_from(choices))
    if mode == "same":
        stride = (1, 1)
        padding: int | str | tuple[int, int] = "same"
        pads = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    elif mode == "valid":
        padding, pads = "valid", [0, 0]
    elif mode == "int":
        padding = draw(st.integers(0, 3))
        pads = [2 * padding] * 2
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pads = [2 * p for p in padding]
    config = {
        "channels": groups * group_in,
        "groups": groups,
        "out_channels": groups * group_out,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "bias": draw(st.booleans()),
        "activation": draw(st.sampled_from([None, *ACTIVATIONS])),
    }
    if transposed:
        # the output must keep at least one row: (n−1)·s + d·(k−1) + 1 > 2p
        sizes = [
            max(1, -(-(pad + 1 - d * (k - 1) - 1) // s) + 1)
            for pad, k, s, d in zip(pads, kernel, stride, dilation, strict=True)
        ]
        limits = [max(s, d) - 1 for s, d in zip(stride, dilation, strict=True)]
        config["output_padding"] = (
            draw(st.integers(0, limits[0])),
            draw(st.integers(0, limits[1])),
        )
    else:
        sizes = [
            max(1, d * (k - 1) + 1 - pad) for pad, k, d in zip(pads, kernel, dilation, strict=True)
        ]
    config["height"] = sizes[0] + draw(st.integers(0, 4))
    config["width"] = sizes[1] + draw(st.integers(0, 4))
    return config


def _random(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _conv_inputs(config: dict, seed: int, transposed: bool = False):
    c, o, g = config["channels"], config["out_channels"], config["groups"]
    kh, kw = config["kernel"]
    x = _random(c, config["height"], config["width"], seed=seed)
    w = (
        _random(c, o // g, kh, kw, seed=seed + 1)
        if transposed
        else _random(o, c // g, kh, kw, seed=seed + 1)
    )
    b = _random(o, seed=seed + 2) if config["bias"] else None
    return x, w, b


def _traced(config: dict, seed: int, transposed: bool = False):
    x, w, b = _conv_inputs(config, seed, transposed)
    keys = ("stride", "padding", "dilation", "groups", "activation")
    options = {key: config[key] for key in keys}
    if transposed:
        return (
            x,
            w,
            b,
            trace_conv_transpose2d(x, w, b, output_padding=config["output_padding"], **options),
        )
    return x, w, b, trace_conv2d(x, w, b, **options)


@PROPERTY
@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_trace_equals_torch(config: dict, seed: int) -> None:
    x, w, b, trace = _traced(config, seed)
    with warnings.catch_warnings():  # torch warns that 'same' with even kernels copies the input
        warnings.simplefilter("ignore", UserWarning)
        expected = F.conv2d(
            x[None], w, b, config["stride"], config["padding"], config["dilation"], config["groups"]
        )[0]
    assert trace.output.dtype == torch.float64
    torch.testing.assert_close(trace.pre_activation, expected, **TOL)
    torch.testing.assert_close(trace.output, _activate(expected, config["activation"]), **TOL)
    assert (trace.shape.out_channels, trace.shape.out_height, trace.shape.out_width) == tuple(
        expected.shape
    )


@PROPERTY
@given(config=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_steps_rebuild_the_output(config: dict, seed: int) -> None:
    x, w, b, trace = _traced(config, seed)
    _, height, width = x.shape
    out_channels, out_h, out_w = trace.output.shape
    pad = trace.shape.padding
    for o in range(out_channels):
        group = o // (out_channels // config["groups"])
        channels = list(range(group * w.shape[1], (group + 1) * w.shape[1]))
        assert trace.in_channels[o].tolist() == channels
        for i in range(out_h):
            for j in range(out_w):
                rows, cols = trace.rows[i].tolist(), trace.cols[j].tolist()
                assert rows[0] == i * config["stride"][0] - pad.top
                assert cols[0] == j * config["stride"][1] - pad.left
                inside = [[0 <= r < height and 0 <= c < width for c in cols] for r in rows]
                assert trace.padded[i, j].tolist() == [[not v for v in row] for row in inside]
                window = torch.zeros(len(channels), len(rows), len(cols), dtype=torch.float64)
                for a, r in enumerate(rows):
                    for bb, c in enumerate(cols):
                        if inside[a][bb]:
                            window[:, a, bb] = x[channels, r, c]
                # the padded input holds the same window at the shifted coordinates
                shifted = trace.padded_input[channels][:, [r + pad.top for r in rows]][
                    :, :, [c + pad.left for c in cols]
                ]
                torch.testing.assert_close(shifted, window, rtol=0, atol=0)
                products = trace.products[o, ..., i, j]
                torch.testing.assert_close(products, window * w[o], rtol=0, atol=0)
                torch.testing.assert_close(trace.channel_sums[o, :, i, j], products.sum((1, 2)))
                total = trace.channel_sums[o, :, i, j].sum() + (b[o] if b is not None else 0.0)
                torch.testing.assert_close(trace.pre_activation[o, i, j], total, **TOL)
    torch.testing.assert_close(trace.output, _activate(trace.pre_activation, config["activation"]))


@PROPERTY
@given(config=conv_configs(transposed=True), seed=st.integers(0, 2**16))
def test_conv_transpose2d_trace_equals_torch(config: dict, seed: int) -> None:
    x, w, b, trace = _traced(config, seed, transposed=True)
    padding = 0 if config["padding"] == "valid" else config["padding"]
    expected = F.conv_transpose2d(
        x[None],
        w,
        b,
        config["stride"],
        padding,
        config["output_padding"],
        config["groups"],
        config["dilation"],
    )[0]
    torch.testing.assert_close(trace.pre_activation, expected, **TOL)
    torch.testing.assert_close(trace.output, _activate(expected, config["activation"]), **TOL)
    assert (trace.shape.out_channels, trace.shape.out_height, trace.shape.out_width) == tuple(
        expected.shape
    )


@PROPERTY
@given(config=conv_configs(transposed=True), seed=st.integers(0, 2**16))
def test_conv_transpose2d_scatters_rebuild_the_output(config: dict, seed: int) -> None:
    x, w, b, trace = _traced(config, seed, transposed=True)
    out_channels, out_h, out_w = trace.output.shape
    per_group = out_channels // config["groups"]
    group_width = x.shape[0] // config["groups"]
    rebuilt = torch.zeros(out_channels, out_h, out_w, dtype=torch.float64)
    for o in range(out_channels):
        group = o // per_group
        channels = list(range(group * group_width, (group + 1) * group_width))
        assert trace.in_channels[o].tolist() == channels
        kernel = w[channels, o - group * per_group]  # Cg×kh×kw
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                torch.testing.assert_close(
                    trace.inputs[o, :, i, j], x[channels, i, j], rtol=0, atol=0
                )
                expected = x[channels, i, j][:, None, None] * kernel
                torch.testing.assert_close(
                    trace.contributions[o, ..., i, j], expected, rtol=0, atol=0
                )
                torch.testing.assert_close(trace.scatter[o, :, :, i, j], expected.sum(0))
                for a, r in enumerate(trace.rows[i].tolist()):
                    for bb, c in enumerate(trace.cols[j].tolist()):
                        outside = not (0 <= r < out_h and 0 <= c < out_w)
                        assert bool(trace.cropped[i, j, a, bb]) == outside
                        if not outside:
                            rebuilt[o, r, c] += trace.scatter[o, a, bb, i, j]
    if b is not None:
        rebuilt += b[:, None, None]
    torch.testing.assert_close(trace.pre_activation, rebuilt, **TOL)


def test_depthwise_sobel_by_hand() -> None:
    # 1 channel, Sobel x on a vertical step edge: the response is 4 where the edge is.
    image = torch.tensor([[[0.0, 0.0, 1.0, 1.0]] * 3], dtype=torch.float64)
    sobel_x = torch.tensor([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]])
    trace = trace_conv2d(image, sobel_x)
    assert trace.output.tolist() == [[[4.0, 4.0]]]
    assert trace.rows.tolist() == [[0, 1, 2]] and trace.cols.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert not trace.padded.any()
    assert trace.products[0, ..., 0, 1].tolist() == [
        [[-0.0, 0.0, 1.0], [-0.0, 0.0, 2.0], [-0.0, 0.0, 1.0]]
    ]


def test_strided_tensors_trace_like_their_copies() -> None:
    # The windows are read through the padded input's strides: views (transposed, sliced) of
    # input and kernels must give the same trace as contiguous copies, numbers and layout.
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(9, 20, 4, generator=generator, dtype=torch.float64).permute(2, 1, 0)[:, ::2]
    w = torch.randn(2, 6, 2, 3, generator=generator, dtype=torch.float64).transpose(0, 1)
    options = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    strided = trace_conv2d(x, w, **options)
    copied = trace_conv2d(x.contiguous(), w.contiguous(), **options)
    for name in ("padded_input", "products", "channel_sums", "sums", "output"):
        assert torch.equal(getattr(strided, name), getattr(copied, name)), name
    assert strided.products.is_contiguous()
    expected = F.conv2d(
        x[None], w, None, groups=2, **{k: options[k] for k in options if k != "groups"}
    )
    torch.testing.assert_close(strided.output, expected[0], **TOL)


def test_padded_taps_are_marked() -> None:
    trace = trace_conv2d(torch.ones(1, 2, 2), torch.ones(1, 1, 3, 3), padding=1)
    assert trace.rows.tolist() == [[-1, 0, 1], [0, 1, 2]]
    assert trace.padded[0, 0].tolist() == [[True] * 3, [True, False, False], [True, False, False]]
    assert trace.output.tolist() == [[[4.0, 4.0], [4.0, 4.0]]]
    assert trace.padded_input.shape == (1, 4, 4)


def test_transposed_cropping_is_marked() -> None:
    trace = trace_conv_transpose2d(torch.ones(1, 2, 2), torch.ones(1, 1, 3, 3), stride=2, padding=1)
    assert trace.shape.out_height == 3
    assert trace.rows.tolist() == [[-1, 0, 1], [1, 2, 3]]
    assert trace.cropped[1, 1].tolist() == [[False, False, True]] * 2 + [[True] * 3]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: trace_conv2d(torch.ones(2, 4, 4), torch.ones(1, 1, 3, 3)), "kernels"),
        (lambda: trace_conv2d(torch.ones(4, 4, 4), torch.ones(3, 2, 3, 3), groups=2), "groups"),
        (lambda: trace_conv2d(torch.ones(1, 4, 4), torch.ones(2, 1, 3, 3), [1.0]), "bias"),
        (lambda: trace_conv2d([[[1.0, 2.0], [3.0]]], torch.ones(1, 1, 1, 1)), "input"),
        (lambda: trace_conv2d([[[float("nan")]]], torch.ones(1, 1, 1, 1)), "input"),
        (lambda: trace_conv2d(torch.ones(1, 1, 1), [[[[float("inf")]]]]), "kernels"),
        (lambda: trace_conv2d([[[1.0, float("nan"), 2.0]]], torch.ones(1, 1, 1, 1)), "input"),
        (
            lambda: trace_conv2d(torch.ones(1, 2, 2), torch.ones(2, 1, 1, 1), [0.0, -math.inf]),
            "bias",
        ),
        (lambda: trace_conv2d(torch.ones(4, 4), torch.ones(1, 1, 3, 3)), "input"),
        (lambda: trace_conv2d(torch.ones(1, 0, 4), torch.ones(1, 1, 1, 1)), "input"),
        (lambda: trace_conv2d(torch.ones(1, 2, 2), torch.ones(1, 1, 3, 3)), "kernel_size"),
        (lambda: trace_conv2d(torch.ones(1, 4, 4), torch.ones(1, 1, 3, 3), stride=0), "stride"),
        (
            lambda: trace_conv2d(torch.ones(1, 4, 4), torch.ones(1, 1, 3, 3), activation="gelu"),
            "activation",
        ),
        (
            lambda: trace_conv2d(
                torch.ones(1, 4, 4), torch.ones(1, 1, 3, 3), stride=2, padding="same"
            ),
            "padding",
        ),
        (
            lambda: trace_conv2d(torch.ones(1, 8, 8), torch.ones(1, 1, 3, 3), max_products=100),
            "input",
        ),
        (lambda: trace_conv_transpose2d(torch.ones(2, 3, 3), torch.ones(1, 1, 3, 3)), "kernels"),
        (
            lambda: trace_conv_transpose2d(torch.ones(3, 3, 3), torch.ones(3, 1, 3, 3), groups=2),
            "groups",
        ),
        (
            lambda: trace_conv_transpose2d(
                torch.ones(1, 3, 3), torch.ones(1, 1, 3, 3), padding="same"
            ),
            "padding",
        ),
        (
            lambda: trace_conv_transpose2d(
                torch.ones(1, 3, 3), torch.ones(1, 1, 3, 3), output_padding=1
            ),
            "output_padding",
        ),
        (
            lambda: trace_conv_transpose2d(torch.ones(1, 1, 1), torch.ones(1, 1, 1, 1), padding=1),
            "padding",
        ),
        (
            lambda: trace_conv_transpose2d(
                torch.ones(1, 8, 8), torch.ones(1, 4, 3, 3), stride=4, max_products=2000
            ),
            "input",
        ),
    ],
)
def test_impossible_traces_name_their_field(call, field: str) -> None:
    with pytest.raises(CNNCoreError) as error:
        call()
    assert error.value.field == field
    assert str(error.value)


def test_budget_counts_the_products() -> None:
    # 2 filters × 6×6 outputs × (1 channel × 3×3 taps + 1 value) + 1×8×8 padded input = 784
    x, w = torch.ones(1, 8, 8), torch.ones(2, 1, 3, 3)
    assert trace_conv2d(x, w, max_products=784).products.numel() == 648
    with pytest.raises(CNNCoreError, match="784"):
        trace_conv2d(x, w, max_products=783)
    # transposed: 2 kernels × (2×2 inputs × 3×3 taps + 4×4 outputs) = 104
    assert trace_conv_transpose2d(torch.ones(1, 2, 2), w.view(1, 2, 3, 3), max_products=104)
    with pytest.raises(CNNCoreError, match="104"):
        trace_conv_transpose2d(torch.ones(1, 2, 2), w.view(1, 2, 3, 3), max_products=103)
