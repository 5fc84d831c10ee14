"""Choosing a trained run on /features and for the effective receptive field, end to end on
the real path: a run trained by a real worker through POST /api/runs, its checkpoint found by
run id through the process-wide run manager (`app.weights_choice.checkpoints` unreplaced), and
what the routes answer computed from that very file."""

import base64
import io
import threading

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import app
from app.runs.manager import RunLimits, RunManager, new_run_id, use_run_manager
from app.runs.spec import FINAL_CHECKPOINT, epoch_checkpoint
from app.runs.store import RunChanges, SQLiteRunStore
from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataConfig, load_dataset
from cnncore.effective_rf_picture import picture_effective_field
from cnncore.features import prepare_input, top_predictions
from cnncore.images import sample_image
from cnncore.training import TrainConfig, Trainer
from tests.app.trained_runs import train_to_end

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
        yield train_to_end(client.post, manager, RUN), manager
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


@pytest.fixture
def finishing(tmp_path) -> tuple[str, RunManager, Trainer]:
    """A run still training, on the real path (store, manager, checkpoint folder): its first
    epoch's checkpoint is recorded; the test writes and records its final one."""
    store = SQLiteRunStore(tmp_path / "cnnviz.sqlite3")
    manager = RunManager(store, tmp_path / "checkpoints", RunLimits(max_concurrent=1))
    previous = use_run_manager(manager)
    try:
        run_id = new_run_id()
        store.create_run(run_id, dict(RUN), "web", manager.owner)
        data = load_dataset(DataConfig(name="digits", limit=120, seed=0))
        trainer = Trainer(
            TrainConfig(model="lenet5", epochs=2, batch_size=32, max_steps_per_epoch=2), data=data
        )
        events = trainer.run()
        for event in events:  # to the end of the first epoch
            if event["kind"] == "epoch":
                break
        record_checkpoint(manager, run_id, trainer, epoch_checkpoint(1))
        for _ in events:  # on to the end of the run
            pass
        yield run_id, manager, trainer
    finally:
        use_run_manager(previous)
        manager.close()
        store.close()


def record_checkpoint(manager: RunManager, run_id: str, trainer: Trainer, name: str) -> None:
    """Write the trainer's weights as the run's checkpoint `name` and record it, from a thread
    of its own (as the run manager's pump records what its worker wrote)."""
    folder = manager.checkpoint_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(trainer, folder / name)
    event = {"kind": "checkpoint", "file": name, "final": name == FINAL_CHECKPOINT}
    recorder = threading.Thread(
        target=manager.store.record, args=(run_id, [event], RunChanges(checkpoint=name))
    )
    recorder.start()
    recorder.join()


def test_a_run_that_finishes_while_its_page_is_open_shows_its_final_weights(finishing):
    """The pages ask for the run again once it has ended: the same server, its request threads
    and caches included, now answers with the final checkpoint, not the epoch one it served."""
    run_id, manager, trainer = finishing
    form = {"model": "lenet5", "sample": "digit", "run": run_id}
    early = client.post("/api/features", data=form).json()
    field = client.post("/api/receptive-field/effective", data=form).json()
    assert early["weights"]["file"] == field["weights_file"] == "epoch-001.safetensors"
    record_checkpoint(manager, run_id, trainer, FINAL_CHECKPOINT)
    for _ in range(3):  # every request thread the server may pick has seen the earlier file
        late = client.post("/api/features", data=form).json()
        field = client.post("/api/receptive-field/effective", data=form).json()
        assert late["weights"]["file"] == field["weights_file"] == FINAL_CHECKPOINT
        assert late["id"] != early["id"]
    final = load_checkpoint(manager.checkpoint_for_run(run_id)).loaded_model()
    prepared = prepare_input(final.weights, sample_image("digit"))
    with torch.no_grad():
        logits = final.model(prepared.tensor)[0]
    expected = top_predictions(logits, list(final.weights.labels), 5)
    assert [p["prob"] for p in late["predictions"]] == pytest.approx([p.prob for p in expected],
                                                                     abs=1e-6)  # fmt: skip
    assert late["predictions"] != early["predictions"]
