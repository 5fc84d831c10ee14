"""A student's model whose activations overflow float32 (±inf, then inf − inf = NaN): every
route answers 200 with JSON null where a number is not finite, says which layers overflowed
(`finite: false`), and keeps the finite layers' ranges exactly torch's."""

from __future__ import annotations

import math

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.main import app
from app.schemas.features import FeaturesOut
from app.schemas.predict import ClassProbabilitiesOut
from app.schemas.unit import UnitOut
from app.settings import Settings
from app.uploaded_models import UploadedModels, get_uploaded_models
from cnncore.features import prepare_input
from cnncore.images import sample_image
from cnncore.models import get_model_info
from cnncore.uploaded import uploaded_weights
from tests.app.uploads import overflowing_state, own_feature_cache

client = TestClient(app)


@pytest.fixture
def overflowing(tmp_path):
    """The uploaded name of `overflowing_state()` (tests/app/uploads.py), and its store."""
    settings = Settings(data_dir=tmp_path)
    store = UploadedModels.from_settings(settings)
    app.dependency_overrides[get_uploaded_models] = lambda: store
    app.dependency_overrides[settings_dep] = lambda: settings
    files = {"file": ("hw.safetensors", overflowing_state(), "application/octet-stream"),
             "labels": ("labels.txt", b"a\nb\nc\nd\n", "text/plain")}  # fmt: skip
    answer = client.post("/api/uploaded-models", data={"name": "hw", "architecture": "tinyvgg"},
                         files=files)  # fmt: skip
    assert answer.status_code == 201, answer.text
    try:
        with own_feature_cache(app):
            yield answer.json()["model"]["model"], store
    finally:
        store.close()
        for dependency in (get_uploaded_models, settings_dep):
            app.dependency_overrides.pop(dependency, None)


def outputs(name: str, store: UploadedModels) -> dict[str, torch.Tensor]:
    """Each block1 layer's output for the digit sample, straight from the stored module."""
    x = prepare_input(uploaded_weights(get_model_info(name).uploaded), sample_image("digit"))
    block = store.module(name.split("_", 1)[1]).block1
    with torch.no_grad():
        conv1 = block.conv1(x.tensor)
        relu1 = block.relu1(conv1)
        conv2 = block.conv2(relu1)
    return {"block1.conv1": conv1[0], "block1.relu1": relu1[0], "block1.conv2": conv2[0]}


def number(value: torch.Tensor) -> float | None:
    """What JSON can carry of a float32: itself, or null for ±inf and NaN."""
    return float(value) if math.isfinite(float(value)) else None


def test_overflowing_layers_are_flagged_and_finite_ones_unchanged(overflowing):
    name, store = overflowing
    answer = client.post("/api/features", data={"model": name, "sample": "digit"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    FeaturesOut.model_validate(body)  # the answer fits its own schema (nulls declared)
    layers = {layer["name"]: layer for layer in body["layers"]}
    expected = outputs(name, store)
    for finite in ("block1.conv1", "block1.relu1"):
        values = expected[finite]
        assert layers[finite]["finite"] is True
        assert values.abs().max() > 1e28  # huge but representable
        assert layers[finite]["ranges"] == [
            [float(channel.min()), float(channel.max())] for channel in values
        ]
    conv2 = expected["block1.conv2"]
    assert torch.isinf(conv2).any()
    assert layers["block1.conv2"]["finite"] is False
    assert layers["block1.conv2"]["ranges"] == [
        [number(channel.min()), number(channel.max())] for channel in conv2
    ]
    assert None in layers["block1.conv2"]["ranges"][0]
    assert layers["classifier"]["finite"] is False  # inf − inf further on: NaN logits
    # the logits are NaN: no probability can be given, the ranking is still listed
    assert [p["prob"] for p in body["predictions"]] == [None] * 4
    assert sorted(p["label"] for p in body["predictions"]) == ["a", "b", "c", "d"]
    # its maps still draw (non-finite values at level 0)
    png = client.get(f"/api/features/{body['id']}/block1.conv2.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    live = client.post("/api/features/live", params={"layer": "block1.conv2"},
                       data={"model": name, "sample": "digit"})  # fmt: skip
    assert live.status_code == 200, live.text
    shown = {layer["name"]: layer["finite"] for layer in live.json()["layers"]}
    assert shown["block1.relu1"] is True and shown["block1.conv2"] is False

    unit = client.get(f"/api/features/{body['id']}/unit",
                      params={"layer": "block1.conv2", "channel": 1, "y": 3, "x": 4})  # fmt: skip
    assert unit.status_code == 200, unit.text
    assert unit.json()["value"] == number(conv2[1, 3, 4])
    UnitOut.model_validate(unit.json())  # null declared
    classifier = client.get(f"/api/features/{body['id']}/unit",
                            params={"layer": "classifier", "channel": 1})  # fmt: skip
    assert classifier.status_code == 200 and classifier.json()["value"] is None  # NaN
    UnitOut.model_validate(classifier.json())
    explained = client.post("/api/explanations", json={"result": body["id"]})
    assert explained.status_code == 200, explained.text


def test_live_prediction_of_nan_logits(overflowing):
    name, _ = overflowing
    picture = client.get("/api/features/samples/digit.png").content
    answer = client.post("/api/predict", params={"model": name}, content=picture,
                         headers={"content-type": "image/png"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["probs"] == [None] * 4
    ClassProbabilitiesOut.model_validate(answer.json())
