"""`/api/models`: catalogue, summaries (bounds, 404, 422 naming the field) and cost comparisons."""

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import app
from cnncore.models import build_model, list_models

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
        "receptive_field": None,
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
