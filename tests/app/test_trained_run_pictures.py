"""Choosing a trained run on /features and for the effective receptive field, end to end on
the real path: a run trained by a real worker through POST /api/runs, its checkpoint found by
run id through the process-wide run manager (`app.weights_choice.checkpoints` unreplaced), and
what the routes answer computed from that very file."""

import base64
import io
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import app
from app.runs.manager import RunLimits, RunManager, use_run_manager
from app.runs.store import SQLiteRunStore
from cnncore.checkpoint import load_checkpoint
from cnncore.effective_rf_picture import picture_effective_field
from cnncore.features import prepare_input, top_predictions
from cnncore.images import sample_image

TIMEOUT = 180
RUN = {"label": "trained", "model": "lenet5", "data": {"name": "digits", "limit": 300},
       "epochs": 1, "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip

client = TestClient(app)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, RunManager]:
    """A lenet5 run trained to its end by a real worker, in a folder of the module's own."""
    folder = tmp_path_factory.mktemp("trained-runs")
    store = SQLiteRunStore(folder / "cnnviz.sqlite3")
    manager = RunManager(store, folder / "checkpoints", RunLimits(max_concurrent=1))
    previous = use_run_manager(manager)
    try:
        created = client.post("/api/runs", json=RUN)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + TIMEOUT
        while not manager.get(run_id).finished:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        assert manager.get(run_id).status == "completed"
        yield run_id, manager
    finally:
        use_run_manager(previous)
        manager.close()
        store.close()


def decode_png(url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))).astype(int)


def test_features_of_a_trained_run_come_from_its_final_checkpoint(trained):
    run_id, manager = trained
    listed = client.get("/api/runs").json()
    assert run_id in [run["id"] for run in listed]  # what /features offers to choose from
    response = client.post("/api/features", data={"model": "lenet5", "sample": "digit",
                                                  "run": run_id})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    path = manager.checkpoint_for_run(run_id)
    assert path.name == "final.safetensors" and path.parent.name == run_id
    assert body["weights"]["run"] == run_id and body["weights"]["file"] == "final.safetensors"
    loaded = load_checkpoint(path).loaded_model()
    prepared = prepare_input(loaded.weights, sample_image("digit"))
    with torch.no_grad():
        logits = loaded.model(prepared.tensor)[0]
    expected = top_predictions(logits, list(loaded.weights.labels), 5)
    assert [p["label"] for p in body["predictions"]] == [p.label for p in expected]
    assert [p["prob"] for p in body["predictions"]] == pytest.approx([p.prob for p in expected],
                                                                     abs=1e-6)  # fmt: skip


def test_the_effective_field_of_a_trained_run_is_that_of_its_checkpoint(trained):
    run_id, manager = trained
    response = client.post("/api/receptive-field/effective",
                           data={"model": "lenet5", "sample": "digit", "run": run_id})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["weights"] == "trained" and body["weights_file"] == "final.safetensors"
    loaded = load_checkpoint(manager.checkpoint_for_run(run_id)).loaded_model()
    core = picture_effective_field(loaded, sample_image("digit"))
    levels = decode_png(body["heatmap"])
    assert np.abs(levels - np.rint(core.field.heatmap.numpy() * 255)).max() <= 1


def test_an_unknown_run_is_refused_by_both_routes(trained):
    for path, extra in (("/api/features", {}), ("/api/receptive-field/effective", {})):
        response = client.post(path, data={"model": "lenet5", "sample": "digit",
                                           "run": "0123456789ab", **extra})  # fmt: skip
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "run"]
