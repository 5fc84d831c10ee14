"""Receptive-field, effective-field, summary and transfer refusals carry a stable code and the
numbers behind them (`ctx`), so the pages can say them in Korean: each `ctx` is checked against
the request, the model's own layers or torch, and each catalogue text has its placeholders."""

import json

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from refusals import refusal, translatable
from torch import nn

from app.deps import settings_dep
from app.errors import core_error_response
from app.main import app
from app.settings import Settings
from cnncore.data import DataSplit
from cnncore.effective_rf import StackConfig, conv_stack
from cnncore.errors import CNNCoreError
from cnncore.models import build_model, get_model_info
from cnncore.transfer import transfer_data

client = TestClient(app)


@pytest.mark.parametrize(
    ("layer", "axis", "value"), [("features.0", "y", 40), ("features.3", "x", 10)]
)
def test_a_unit_outside_the_layer_names_the_layer_and_its_size(layer, axis, value):
    item = refusal(client.get("/api/models/lenet5/receptive-field",
                              params={"layer": layer, axis: value}))  # fmt: skip
    model = build_model("lenet5").eval()
    with torch.no_grad():  # the layer's real feature map, from torch
        height, width = model.get_submodule(layer)(
            model.features[: int(layer.split(".")[1])](
                torch.zeros(1, *get_model_info("lenet5").default_input.as_tuple())
            )
        ).shape[-2:]
    assert item["type"] == "unit_out_of_range" and item["loc"] == ["query", axis]
    limit = height if axis == "y" else width
    assert value >= limit
    assert item["ctx"] == {"le": limit - 1, "height": height, "width": width, "layer": layer}


def test_an_input_too_small_for_a_layer_names_the_layer_and_its_feature_map():
    params = {"height": 32, "width": 40}
    item = refusal(client.get("/api/models/alexnet/summary", params=params))
    assert item["type"] == "input_too_small_for_model" and item["loc"] == ["query", "height"]
    layer = item["ctx"]["layer"]
    model = build_model("alexnet").eval()
    index = int(layer.split(".")[1])
    with torch.no_grad():
        feature_map = model.features[:index](torch.zeros(1, 3, 32, 40))
        with pytest.raises(RuntimeError):  # torch refuses the very layer named
            model.get_submodule(layer)(feature_map)
    assert item["ctx"] == {"size": "3×32×40", "layer": layer,
                           "shape": "×".join(map(str, feature_map.shape[1:]))}  # fmt: skip
    # the receptive fields of the same input: the pooling arithmetic's refusal, at that layer
    item = refusal(client.get("/api/models/alexnet/receptive-fields", params=params))
    pool = model.get_submodule(layer)
    assert item["type"] == "pool_output_empty" and item["ctx"]["layer"] == layer
    assert (
        item["ctx"]["size"] == feature_map.shape[-2] and item["ctx"]["kernel"] == pool.kernel_size
    )


def test_work_over_the_limit_names_the_multiply_adds():
    config = StackConfig(depth=3, kernel=5)
    height, width, samples = 12, 10, 4
    # multiply-adds counted from the stack torch runs: every output value of every conv
    stack = conv_stack(config)
    macs = sum(m.out_channels * m.in_channels * m.kernel_size[0] * m.kernel_size[1] * height * width
               for m in stack.modules() if isinstance(m, nn.Conv2d)) * samples  # fmt: skip
    body = {"stack": {"depth": 3, "kernel": 5}, "height": height, "width": width,
            "samples": samples}  # fmt: skip
    app.dependency_overrides[settings_dep] = lambda: Settings(max_erf_macs=macs - 1)
    try:
        item = refusal(client.post("/api/receptive-field/effective", json=body))
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    assert item["type"] == "work_too_large" and item["loc"] == ["body", "samples"]
    assert item["ctx"] == {"macs": macs, "limit": macs - 1}


@pytest.mark.parametrize("kernel", [2, 4, 6])
def test_an_even_stack_kernel_is_refused(kernel):
    body = {"stack": {"depth": 2, "kernel": kernel}, "height": 16, "width": 16, "samples": 1}
    item = refusal(client.post("/api/receptive-field/effective", json=body))
    assert item["type"] == "kernel_must_be_odd" and item["ctx"] == {"kernel": kernel}


def test_a_doubling_dilation_wider_than_the_input_names_the_span():
    body = {"stack": {"depth": 3, "kernel": 3, "dilation": 4, "growth": "doubling"},
            "height": 16, "width": 20, "samples": 1}  # fmt: skip
    item = refusal(client.post("/api/receptive-field/effective", json=body))
    assert item["type"] == "dilated_kernel_wider_than_input" and item["loc"] == ["body", "depth"]
    last = 4 * 2**2
    span = F.conv2d(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 3, 3), dilation=last).shape[-1]
    assert item["ctx"] == {"effective": 64 - span + 1, "size": 16, "kernel": 3, "dilation": last}


@pytest.mark.parametrize(("channels", "expected"), [(3, 1), (1, 3)])
def test_a_dataset_with_other_channels_than_the_source_network(channels, expected):
    images = torch.zeros(2, channels, 8, 8)
    labels = torch.zeros(2, dtype=torch.int64)
    data = DataSplit("toy", images, labels, images, labels, ["a"])
    with pytest.raises(CNNCoreError) as caught:
        transfer_data(data, (expected, 8, 8), "resize")
    [item] = json.loads(core_error_response(caught.value).body)["detail"]
    translatable(item)
    assert item["type"] == "source_channels_mismatch" and item["loc"] == ["body", "data.channels"]
    assert item["ctx"] == {"channels": channels, "expected": expected}
