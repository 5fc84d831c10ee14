"""`/api/models`: catalogue, summaries (bounds, 404, 422 naming the field) and cost comparisons."""

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import app
from cnncore.errors import CNNCoreError
from cnncore.inspect import summarize_blocks, summarize_model
from cnncore.models import build_model, get_model_info, list_models
from cnncore.receptive_field import NOT_RUN, model_field_graph, receptive_fields, summary_fields

client = TestClient(app)


def test_catalogue_lists_every_model_with_its_parameter_count():
    body = client.get("/api/models").json()
    assert [m["name"] for m in body] == list_models()
    by_name = {m["name"]: m for m in body}
    assert by_name["vgg16"]["params"] == 138_357_544
    assert by_name["lenet5"]["default_input"] == {"channels": 1, "height": 32, "width": 32}
    assert by_name["lenet5"]["num_classes"] == 10
    assert by_name["autoencoder"]["num_classes"] is None
    assert set(by_name["resnet50"]) == {
        "name",
        "title",
        "family",
        "params",
        "default_input",
        "num_classes",
        "paper",
    }
    for entry in body:
        model = build_model(entry["name"], device="meta")
        assert entry["params"] == sum(p.numel() for p in model.parameters())


def test_summary_of_a_configured_model():
    response = client.get(
        "/api/models/resnet18/summary",
        params={"channels": 1, "height": 64, "width": 96, "num_classes": 10},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "resnet18" and body["num_classes"] == 10
    assert body["input"] == {"channels": 1, "height": 64, "width": 96}
    model = build_model("resnet18", device="meta", in_channels=1, num_classes=10)
    assert body["total_params"] == sum(p.numel() for p in model.parameters())
    assert body["total_params"] == sum(layer["params"] for layer in body["layers"])
    assert body["total_macs"] == sum(layer["macs"] for layer in body["layers"])
    first = body["layers"][0]
    assert first == {
        "name": "conv1",
        "type": "Conv2d",
        "input_shape": [1, 64, 96],
        "output_shape": [64, 32, 48],
        "params": 64 * 49,
        "macs": 32 * 48 * 64 * 49,
        "kernel_size": [7, 7],
        "stride": [2, 2],
        "groups": 1,
        # 7×7 at stride 2, padding 3: unit 0 is centred on pixel 0 (Distill 2019)
        "receptive_field": {
            "size": {"height": 7, "width": 7},
            "stride": {"height": 2, "width": 2},
            "start": {"height": 0, "width": 0},
            "aligned": True,
            "is_global": False,
        },
        "receptive_field_reason": None,
    }
    assert body["layers"][-1]["output_shape"] == [10]
    # the last output agrees with a real forward pass of the same configuration
    out = model(torch.zeros(1, 1, 64, 96, device="meta"))
    assert list(out.shape[1:]) == body["layers"][-1]["output_shape"]


def test_summary_defaults_come_from_the_model():
    body = client.get("/api/models/lenet5/summary").json()
    assert body["input"] == {"channels": 1, "height": 32, "width": 32}
    assert body["total_params"] == 61_706
    autoencoder = client.get("/api/models/autoencoder/summary", params={"num_classes": 5}).json()
    assert autoencoder["num_classes"] is None
    assert autoencoder["layers"][-1]["output_shape"] == [1, 28, 28]


def test_unknown_model_is_404():
    response = client.get("/api/models/resnet1000/summary")
    assert response.status_code == 404
    assert "resnet18" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"channels": 5}, "channels"),
        ({"channels": 0}, "channels"),
        ({"height": 513}, "height"),
        ({"width": 10_000}, "width"),
        ({"num_classes": 1001}, "num_classes"),
        ({"height": "tall"}, "height"),
        ({"height": 40}, "height"),  # too small for AlexNet's strides
        ({"width": 30}, "width"),
    ],
)
def test_bad_input_is_422_naming_the_field(params, field):
    response = client.get("/api/models/alexnet/summary", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_too_small_for_a_sized_model():
    response = client.get("/api/models/lenet5/summary", params={"height": 16})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "height"]


def test_cost_comparisons():
    response = client.get("/api/models/costs")
    assert response.status_code == 200
    bottleneck, separable = response.json()
    assert bottleneck["name"] == "bottleneck"
    assert bottleneck["input"] == {"channels": 192, "height": 28, "width": 28}
    assert bottleneck["standard"]["macs"] == 120_422_400
    assert bottleneck["factorised"]["macs"] == 2_408_448 + 10_035_200
    assert bottleneck["macs_ratio"] == pytest.approx(16 / (32 * 25) + 16 / 192)
    assert [layer["name"] for layer in bottleneck["factorised"]["layers"]] == [
        "inception3a.branch3.0.conv",
        "inception3a.branch3.1.conv",
    ]
    assert separable["name"] == "depthwise_separable"
    assert separable["macs_ratio"] == pytest.approx(1 / 512 + 1 / 9)
    assert separable["factorised"]["layers"][0]["name"] == "features.7.depthwise.0"


def test_openapi_documents_the_routes():
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/models", "/api/models/costs", "/api/models/{name}/summary"} <= set(paths)


def _pair(field, attribute):
    return {"height": getattr(field.height, attribute), "width": getattr(field.width, attribute)}


@pytest.mark.parametrize("name", list_models())
def test_every_summary_layer_has_its_receptive_field(name):
    """Each row carries the field `receptive_fields()` gives the same layer, or null and why."""
    info = get_model_info(name)
    size = {} if info.sized_by_input else {"height": 96, "width": 80}
    body = client.get(f"/api/models/{name}/summary", params=size).json()
    shape = (body["input"]["channels"], body["input"]["height"], body["input"]["width"])
    model = build_model(name, device="meta", input_size=shape[1:])
    fields = receptive_fields(model, shape)
    assert body["layers"]
    for layer in body["layers"]:
        field = fields.get(layer["name"])
        if layer["receptive_field"] is None:
            assert layer["receptive_field_reason"], layer["name"]
            continue
        assert layer["receptive_field_reason"] is None
        assert field is not None, layer["name"]
        assert layer["receptive_field"] == {
            "size": _pair(field, "size"),
            "stride": _pair(field, "jump"),
            "start": _pair(field, "start"),
            "aligned": field.aligned,
            "is_global": field.is_global,
        }
    # at these sizes every zoo layer runs and is traced: no row is left without a field
    assert all(layer["receptive_field"] is not None for layer in body["layers"])


def test_non_square_input_keeps_per_axis_fields():
    body = client.get("/api/models/alexnet/summary", params={"height": 96, "width": 160}).json()
    pool = next(layer for layer in body["layers"] if layer["name"] == "features.2")
    # conv 11/4 then max pool 3/2: r = 11 + 2·4 = 19, jump 8, on both axes alike
    assert pool["receptive_field"]["size"] == {"height": 19, "width": 19}
    assert pool["receptive_field"]["stride"] == {"height": 8, "width": 8}
    assert pool["output_shape"][1:] == [11, 19]


def test_fractional_stride_after_uneven_adaptive_pooling():
    """AlexNet at 96×160 reaches its adaptive 6×6 pool with a 2×4 map: the pool spreads 2 rows
    over 6 (jump 32·2/6) and 4 columns over 6 (32·4/6), so the stride is fractional and differs
    per axis; the JSON keeps it as numbers."""
    params = {"height": 96, "width": 160}
    body = client.get("/api/models/alexnet/summary", params=params).json()
    avgpool = next(layer for layer in body["layers"] if layer["name"] == "avgpool")
    assert avgpool["input_shape"][1:] == [2, 4]
    assert avgpool["receptive_field"]["stride"] == pytest.approx(
        {"height": 32 * 2 / 6, "width": 32 * 4 / 6}
    )
    core = receptive_fields(build_model("alexnet", device="meta"), (3, 96, 160))["avgpool"]
    assert avgpool["receptive_field"]["stride"] == _pair(core, "jump")


def test_layers_that_do_not_run_get_a_reason():
    """GoogLeNet's auxiliary classifiers exist only in training mode: null field, reason given."""
    summary = summarize_model("googlenet", 3, 96, 96, aux_logits=True)
    graph = model_field_graph("googlenet", 3, 96, 96)
    matched = summary_fields(summary, graph)
    rows = zip(summary.layers, matched, strict=True)
    idle = [row.name for row, (field, _) in rows if field is None]
    assert idle and all(name.startswith(("aux1", "aux2")) for name in idle)
    assert {reason for field, reason in matched if field is None} == {NOT_RUN}


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_gets_its_blocks(name):
    """Every zoo model traces, so the summary's blocks are always the core's (the route kept a
    fallback for untraceable models that nothing reached, and lost it)."""
    info = get_model_info(name)
    params = {} if info.sized_by_input else {"height": 72, "width": 88}
    body = client.get(f"/api/models/{name}/summary", params=params).json()
    core = summarize_blocks(name, None, params.get("height"), params.get("width"))
    assert [block["name"] for block in body["blocks"]] == [block.name for block in core]
    assert body["blocks"], name  # every zoo model groups its layers in containers


def test_a_failing_trace_is_a_422_not_a_silent_fallback(monkeypatch):
    def untraceable(*args):
        raise CNNCoreError("this model cannot be traced by torch.fx: test", "model")

    monkeypatch.setattr("app.routes.models.model_field_graph", untraceable)
    response = client.get("/api/models/lenet5/summary")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "model"]
