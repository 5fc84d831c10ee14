"""The refusals students meet on the pages carry a stable code and the numbers behind them, so the
pages can say them in Korean: `type` names the refusal, `ctx` holds the computed sizes (checked
against the formulas and torch here), and the catalogue text of that type has every placeholder
filled by that ctx."""

import math

import pytest
import refusals
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.main import app
from app.settings import Settings

client = TestClient(app)


def refusal(path: str, body: dict) -> dict:
    """The one detail item of a 422, after checking the pages can translate it in full."""
    return refusals.refusal(client.post(path, json=body))


def conv_output(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Dumoulin & Visin 2016, relationship 15 (torch.nn.Conv2d's shape formula)."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(3, 5, 1, 0, 1), (4, 7, 2, 1, 1), (6, 3, 1, 0, 4), (2, 4, 3, 0, 2), (5, 9, 1, 1, 1)],
)
def test_empty_convolution_output_names_the_sizes(size, kernel, stride, padding, dilation):
    body = {"channels": 1, "height": size, "width": size + 10, "kernel_size": kernel,
            "stride": stride, "padding": padding, "dilation": dilation}  # fmt: skip
    item = refusal("/api/conv/shape", body)
    assert item["loc"] == ["body", "kernel_size"]
    assert item["type"] == ("dilated_kernel_too_large" if dilation > 1 else "conv_output_empty")
    expected = conv_output(size, kernel, stride, padding, dilation)
    assert expected < 1
    padded, effective = size + 2 * padding, dilation * (kernel - 1) + 1
    assert item["ctx"] == {"size": size, "padding": 2 * padding, "padded": padded,
                           "kernel": kernel, "dilation": dilation, "effective": effective,
                           "output": expected}  # fmt: skip
    with pytest.raises(RuntimeError):  # torch refuses the same layer on such an input
        F.conv2d(torch.zeros(1, 1, size, size + 10), torch.zeros(1, 1, kernel, kernel),
                 stride=stride, padding=padding, dilation=dilation)  # fmt: skip


def test_same_padding_with_a_stride_names_the_stride():
    body = {"height": 8, "width": 8, "kernel_size": 3, "stride": [2, 1], "padding": "same"}
    item = refusal("/api/conv/shape", body)
    assert item["type"] == "same_padding_needs_stride_1" and item["ctx"] == {"stride": "2×1"}
    with pytest.raises(RuntimeError, match="not supported for strided"):
        F.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3), stride=(2, 1), padding="same")


def test_groups_that_do_not_divide_the_channels():
    body = {"channels": 6, "height": 8, "width": 8, "out_channels": 8, "groups": 4}
    item = refusal("/api/conv/shape", body)
    assert item["type"] == "groups_must_divide_channels" and item["loc"] == ["body", "groups"]
    assert item["ctx"] == {"groups": 4, "channels": 6, "out_channels": 8}


def test_probabilities_that_do_not_sum_to_one():
    item = refusal("/api/functions/loss", {"probs": [0.5, 0.25, 0.5], "target": 0})
    assert item["type"] == "probabilities_not_normalised" and item["loc"] == ["body", "probs"]
    assert item["ctx"] == {"total": 1.25}


@pytest.mark.parametrize(("classes", "target"), [(3, 3), (2, 7), (4, 10)])
def test_target_class_out_of_range(classes, target):
    item = refusal("/api/functions/loss", {"logits": [0.5] * classes, "target": target})
    assert item["type"] == "target_class_out_of_range"
    assert item["ctx"] == {"target": target, "classes": classes, "le": classes - 1}


def test_target_distribution_of_the_wrong_length():
    item = refusal("/api/functions/loss", {"logits": [1, 2, 3], "target": [0.5, 0.5]})
    assert item["type"] == "target_length_mismatch"
    assert item["ctx"] == {"entries": 2, "classes": 3}


def test_activation_range_start_not_below_stop():
    item = refusal("/api/functions/activation", {"name": "relu", "start": 2.5, "stop": -1})
    assert item["type"] == "range_start_not_below_stop" and item["loc"] == ["body", "stop"]
    assert item["ctx"] == {"start": 2.5, "stop": -1.0}


def test_pool_padding_over_half_the_kernel():
    body = {"input": [[[1.0] * 4] * 4], "kind": "max", "kernel_size": 3, "padding": 2}
    item = refusal("/api/pool/trace", body)
    assert item["type"] == "pool_padding_over_half_kernel"
    assert item["ctx"] == {"padding": 2, "kernel": 3, "le": 1}
    with pytest.raises(RuntimeError):  # torch: "pad should be at most half of effective kernel"
        F.max_pool2d(torch.zeros(1, 1, 4, 4), 3, padding=2)


def ramp(*shape: int) -> list:
    """A C×H×W input or a 4-d kernel array of distinct small numbers, as nested lists."""
    return (torch.arange(math.prod(shape), dtype=torch.float64) / 10).reshape(shape).tolist()


@pytest.mark.parametrize(
    ("channels", "groups", "kernel_channels", "filters"),
    [(3, 1, 2, 4), (4, 2, 4, 2), (3, 2, 1, 2), (6, 3, 3, 3)],
)
def test_kernels_with_the_wrong_channels(channels, groups, kernel_channels, filters):
    body = {"input": ramp(channels, 5, 5), "kernels": ramp(filters, kernel_channels, 3, 2),
            "groups": groups}  # fmt: skip
    item = refusal("/api/conv/trace", body)
    assert item["type"] == "kernel_channels_mismatch" and item["loc"] == ["body", "kernels"]
    shape = f"{filters}×{kernel_channels}×3×2"
    assert item["ctx"] == {"channels": channels, "groups": groups, "shape": shape}
    with pytest.raises(RuntimeError):  # torch refuses the same weights
        F.conv2d(torch.tensor([ramp(channels, 5, 5)]), torch.tensor(body["kernels"]),
                 groups=groups)  # fmt: skip


@pytest.mark.parametrize(
    ("channels", "groups", "kernel_shape", "code"),
    [(3, 1, (2, 4, 3, 3), "transposed_kernel_shape"),
     (4, 1, (2, 1, 2, 2), "transposed_kernel_shape"),
     (3, 2, (3, 2, 3, 3), "groups_must_divide_channels"),
     (4, 3, (4, 1, 2, 2), "groups_must_divide_channels")],
)  # fmt: skip
def test_transposed_kernels_and_groups(channels, groups, kernel_shape, code):
    body = {"input": ramp(channels, 4, 4), "kernels": ramp(*kernel_shape), "groups": groups,
            "transposed": True}  # fmt: skip
    item = refusal("/api/conv/trace", body)
    assert item["type"] == code
    if code == "transposed_kernel_shape":
        assert item["loc"] == ["body", "kernels"]
        assert item["ctx"] == {"channels": channels, "shape": "×".join(map(str, kernel_shape))}
    else:
        assert item["loc"] == ["body", "groups"]
        out_channels = kernel_shape[1] * groups  # C×(O/groups)×kh×kw
        assert item["ctx"] == {"groups": groups, "channels": channels, "out_channels": out_channels}
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(torch.tensor([ramp(channels, 4, 4)]), torch.tensor(body["kernels"]),
                           groups=groups)  # fmt: skip


@pytest.mark.parametrize(("filters", "entries"), [(2, 3), (4, 1), (1, 5)])
def test_a_bias_per_output_channel(filters, entries):
    body = {"input": ramp(1, 4, 4), "kernels": ramp(filters, 1, 2, 2), "bias": [0.5] * entries}
    item = refusal("/api/conv/trace", body)
    assert item["type"] == "bias_per_output_channel" and item["loc"] == ["body", "bias"]
    assert item["ctx"] == {"out_channels": filters, "entries": entries}
    with pytest.raises(RuntimeError):
        F.conv2d(torch.tensor([body["input"]]), torch.tensor(body["kernels"]),
                 torch.tensor(body["bias"]))  # fmt: skip


@pytest.mark.parametrize(
    ("size", "kernel", "filters", "padding", "limit"),
    [(6, 3, 2, 0, 100), (5, 2, 3, 1, 250), (8, 4, 1, 2, 60)],
)
def test_a_trace_too_large_names_its_count(size, kernel, filters, padding, limit):
    body = {"input": ramp(2, size, size), "kernels": ramp(filters, 2, kernel, kernel),
            "padding": padding}  # fmt: skip
    app.dependency_overrides[settings_dep] = lambda: Settings(max_trace_products=limit)
    try:
        item = refusal("/api/conv/trace", body)
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    out = conv_output(size, kernel, 1, padding, 1)
    # one product per (output cell, channel, tap), plus each output value and padded input cell
    count = filters * out * out * (2 * kernel * kernel + 1) + 2 * (size + 2 * padding) ** 2
    assert count > limit
    assert item["type"] == "trace_too_large" and item["loc"] == ["body", "input"]
    assert item["ctx"] == {"count": count, "limit": limit}
