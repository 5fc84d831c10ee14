"""/api/features/{id}/unit: the written-out unit equals the layer's value; bad units are 4xx."""

import numpy as np
import pytest
import refusals
import torch
from fastapi.testclient import TestClient

from app.feature_cache import FeatureCache, get_feature_cache
from app.main import app
from app.settings import get_settings
from app.unit_store import UnitStore, get_unit_store
from app.weights_choice import checkpoints
from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataConfig, load_dataset
from cnncore.features import capture_layers, prepare_input, trace_layers
from cnncore.images import sample_image
from cnncore.training import TrainConfig, Trainer

client = TestClient(app)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache, store = FeatureCache(get_settings()), UnitStore(get_settings())
    app.dependency_overrides[get_feature_cache] = lambda: cache
    app.dependency_overrides[get_unit_store] = lambda: store
    yield cache, store
    for dependency in (get_feature_cache, get_unit_store):  # only what this set
        app.dependency_overrides.pop(dependency, None)


def features(model: str, sample: str = "digit") -> dict:
    response = client.post("/api/features", data={"model": model, "sample": sample})
    assert response.status_code == 200
    return response.json()


def unit(result: str, **query):
    return client.get(f"/api/features/{result}/unit", params=query)


def reference(cache: FeatureCache, model: str, sample: str) -> dict[str, torch.Tensor]:
    """Every layer's float output, computed here on its own."""
    found = cache.model(model)
    picture = prepare_input(found.loaded.weights, sample_image(sample)).tensor
    kept, _ = capture_layers(found.layers, picture)
    return {name: value[0] for name, value in kept.items()}


def test_lenet_units_equal_the_layers_values(fresh_cache) -> None:
    cache, store = fresh_cache
    body = features("lenet5")
    values = reference(cache, "lenet5", "digit")
    assert store.sources.get(body["id"]).activations is not None  # kept by the POST itself
    for layer, channel, y, x in [("features.0", 3, 10, 12), ("features.2", 5, 7, 1),
                                  ("features.3", 15, 0, 9), ("classifier.0", 40, 0, 0),
                                  ("classifier.2", 7, 0, 0)]:  # fmt: skip
        answer = unit(body["id"], layer=layer, channel=channel, y=y, x=x)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        out = values[layer]
        expected = float(out[channel, y, x] if out.dim() == 3 else out[channel])
        assert got["value"] == pytest.approx(expected, rel=1e-6, abs=1e-7)
        assert got["total"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    conv = unit(body["id"], layer="features.0", channel=0, y=0, x=0).json()
    assert conv["kind"] == "conv" and conv["sources"] == ["_input"]
    assert np.array(conv["detail"]["window"]).shape == (1, 5, 5)
    logit = unit(body["id"], layer="classifier.2", channel=2).json()["detail"]["softmax"]
    assert logit["probability"] == pytest.approx(
        float(torch.softmax(values["classifier.2"].double(), 0)[2]), rel=1e-9)  # fmt: skip


def test_a_result_answered_from_the_cache_captures_once(fresh_cache) -> None:
    _, store = fresh_cache
    features("tinyvgg", "circle")
    again = features("tinyvgg", "circle")
    assert again["cached"] and store.sources.get(again["id"]).activations is None
    assert unit(again["id"], layer="block2.conv1", channel=2, y=3, x=4).status_code == 200
    assert store.sources.get(again["id"]).activations is not None  # captured, then kept


def test_a_model_over_the_budget_keeps_only_the_asked_layer(fresh_cache) -> None:
    cache, _ = fresh_cache
    store = UnitStore(get_settings().model_copy(update={"unit_store_bytes": 10_000}))
    app.dependency_overrides[get_unit_store] = lambda: store
    body = features("tinyvgg", "circle")
    assert store.sources.get(body["id"]).activations is None
    got = unit(body["id"], layer="block2.conv2", channel=1, y=5, x=6).json()
    values = reference(cache, "tinyvgg", "circle")
    assert got["total"] == pytest.approx(float(values["block2.conv2"][1, 5, 6]), rel=1e-5)


@pytest.mark.parametrize(
    ("query", "field", "kind"),
    [({"layer": "nope"}, "layer", "unknown_layer"),
     ({"layer": "features.0", "channel": 6}, "channel", "unit_outside_map"),
     ({"layer": "features.0", "y": 28}, "y", "unit_outside_map"),
     ({"layer": "classifier.0", "x": 1}, "x", "unit_outside_map"),
     ({"layer": "features.0", "x": -1}, "x", "greater_than_equal"),
     ({"layer": ""}, "layer", "string_too_short")],
)  # fmt: skip
def test_bad_units_are_refused_naming_the_field(query, field, kind) -> None:
    body = features("lenet5")
    detail = refusals.refusal(unit(body["id"], **query))  # translatable in both languages
    assert detail["loc"][-1] == field and detail["type"] == kind


def test_an_unknown_result_is_a_404() -> None:
    assert unit("A" * 22, layer="features.0").status_code == 404


# --- every source of weights: a training run's checkpoint ----------------------------------------
RUN = "0123456789ab"


@pytest.fixture(scope="module")
def run_checkpoint_file(tmp_path_factory):
    """One checkpoint of a tiny LeNet-5 run on scikit-learn digits (two steps)."""
    data = load_dataset(DataConfig(name="digits", limit=120, seed=0))
    trainer = Trainer(
        TrainConfig(model="lenet5", epochs=1, batch_size=32, max_steps_per_epoch=2), data=data
    )
    trainer.run()
    return save_checkpoint(trainer, tmp_path_factory.mktemp("run") / "epoch-1.safetensors")


@pytest.fixture
def run_is_the_checkpoint(run_checkpoint_file):
    """Run RUN's checkpoint is `run_checkpoint_file`, for this test only: the override left in
    place once made every later module's runs (the browser pages' too) answer with this file."""
    app.dependency_overrides[checkpoints] = lambda: lambda run_id: run_checkpoint_file
    yield run_checkpoint_file
    app.dependency_overrides.pop(checkpoints, None)


def test_units_and_explanations_of_a_run_checkpoint(run_is_the_checkpoint) -> None:
    run_checkpoint_file = run_is_the_checkpoint
    body = client.post("/api/features", data={"model": "lenet5", "sample": "digit", "run": RUN})
    assert body.status_code == 200, body.text
    result = body.json()["id"]
    loaded = load_checkpoint(run_checkpoint_file).loaded_model()
    picture = prepare_input(loaded.weights, sample_image("digit")).tensor
    layers = trace_layers(loaded.model)
    kept, _ = capture_layers(layers, picture)
    for layer, channel, y, x in [("features.3", 4, 2, 7), ("classifier.2", 6, 0, 0)]:
        got = unit(result, layer=layer, channel=channel, y=y, x=x).json()
        out = kept[layer][0]
        expected = float(out[channel, y, x] if out.dim() == 3 else out[channel])
        assert got["total"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    why = client.post("/api/explanations", json={"result": result, "target": 6}).json()
    assert why["score"] == pytest.approx(float(kept["classifier.2"][0, 6]), rel=1e-5)
