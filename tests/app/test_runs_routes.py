"""`/api/runs`: bad configs are 422s naming the field; a run is created, streamed (SSE with ids,
`Last-Event-ID` resumes exactly), controlled, exported (CSV and JSON agree with the events) and
its checkpoint holds the trained weights; `cnnviz train` records runs the API lists."""

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.main import app
from app.runs.headless import add_train_arguments, train_command
from app.runs.manager import RunError, RunLimits, RunManager, get_run_manager
from app.runs.store import SQLiteRunStore
from app.settings import Settings
from cnncore.checkpoint import load_checkpoint
from cnncore.data import DataConfig, load_dataset, resize_split

ROOT = Path(__file__).resolve().parents[2]
TINY = {"label": "tiny", "model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 2,
        "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cnnviz-data")


@pytest.fixture(scope="module")
def manager(data_dir):
    store = SQLiteRunStore(data_dir / "cnnviz.sqlite3")
    running = RunManager(store, data_dir / "checkpoints", RunLimits(max_concurrent=2))
    app.dependency_overrides[get_run_manager] = lambda: running
    yield running
    app.dependency_overrides.pop(get_run_manager, None)
    running.close()
    store.close()


@pytest.fixture(scope="module")
def client(manager):
    return TestClient(app)


def sse(text: str) -> list[dict]:
    """Parse a complete text/event-stream into {id, event, data} dicts (comments skipped)."""
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        message: dict = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            message[name] = value
        if "data" in message:
            messages.append(message)
    return messages


TOKENS: dict[str, str] = {}  # run id → the control token its creation answered


@pytest.fixture(scope="module")
def finished(client) -> tuple[str, list[dict]]:
    """A tiny run created through the API and followed over SSE to its end."""
    response = client.post("/api/runs", json=TINY)
    assert response.status_code == 201, response.text
    body = response.json()
    TOKENS[body["id"]] = body["owner_token"]
    assert body["events_url"] == f"/api/runs/{body['id']}/events"
    stream = client.get(body["events_url"])  # returns when the run has ended
    assert stream.headers["content-type"].startswith("text/event-stream")
    return body["id"], sse(stream.text)


# --- who may control a run ------------------------------------------------------------------------


def test_only_the_creator_controls_a_run(client, manager):
    """The token comes with the creation only; pause, resume and stop need it (401 without,
    403 with another run's), reading a run does not."""
    created = client.post("/api/runs", json={**TINY, "epochs": 50, "max_steps_per_epoch": None,
                                             "batch_size": 4})  # fmt: skip
    assert created.status_code == 201, created.text
    run_id, token = created.json()["id"], created.json()["owner_token"]
    assert len(token) >= 32 and token not in json.dumps(client.get(f"/api/runs/{run_id}").json())
    other = client.post("/api/runs", json=TINY).json()
    try:
        for action in ("pause", "resume", "stop"):
            missing = client.post(f"/api/runs/{run_id}/{action}")
            assert missing.status_code == 401 and "X-Run-Token" in missing.json()["detail"]
            assert missing.json()["type"] == "unauthorized"
            for wrong in (other["owner_token"], token[:-1] + ("A" if token[-1] != "A" else "B")):
                refused = client.post(f"/api/runs/{run_id}/{action}",
                                      headers={"X-Run-Token": wrong})  # fmt: skip
                assert refused.status_code == 403 and refused.json()["type"] == "forbidden"
        assert manager.get(run_id).status in ("queued", "running")  # nothing reached the run
        stopped = client.post(f"/api/runs/{run_id}/stop", headers={"X-Run-Token": token})
        assert stopped.status_code == 200
    finally:
        for started in (run_id, other["id"]):
            with contextlib.suppress(RunError):  # ended meanwhile: nothing to stop
                manager.stop(started)


def test_only_the_creator_deletes_a_finished_run(client, manager):
    created = client.post("/api/runs", json=TINY).json()
    run_id, owner = created["id"], {"X-Run-Token": created["owner_token"]}
    folder = manager.checkpoint_dir(run_id)
    deadline = time.monotonic() + 120
    while not manager.get(run_id).finished:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.05)
    assert folder.is_dir() and client.get(f"/api/runs/{run_id}/events").status_code == 200
    assert client.delete(f"/api/runs/{run_id}").status_code == 401
    stranger = {"X-Run-Token": "x" * 32}
    assert client.delete(f"/api/runs/{run_id}", headers=stranger).status_code == 403
    assert client.delete(f"/api/runs/{run_id}", headers=owner).status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404
    assert manager.store.events_after(run_id, 0, 10) == []
    assert manager.store.run_token(run_id) is None
    assert not folder.exists()
    assert client.delete(f"/api/runs/{run_id}", headers=owner).status_code == 404
    going = client.post("/api/runs", json={**TINY, "epochs": 50, "max_steps_per_epoch": None,
                                           "batch_size": 4}).json()  # fmt: skip
    try:
        refused = client.delete(f"/api/runs/{going['id']}",
                                headers={"X-Run-Token": going["owner_token"]})  # fmt: skip
        assert refused.status_code == 409 and "stop it" in refused.json()["detail"]
    finally:
        with contextlib.suppress(RunError):
            manager.stop(going["id"])


def test_run_starts_are_limited_per_client_over_time(client, manager):
    settings = Settings(client_runs_per_hour=2)
    app.dependency_overrides[settings_dep] = lambda: settings
    started = []
    try:
        for _ in range(2):
            response = client.post("/api/runs", json=TINY)
            assert response.status_code == 201
            started.append(response.json()["id"])
        refused = client.post("/api/runs", json=TINY)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 3500 < wait <= 3600  # the first start leaves the hour's window then
        item = refused.json()["detail"][0]
        assert item["type"] == "too_many_requests" and item["ctx"]["limit"] == 2
        bad = client.post("/api/runs", json={**TINY, "lr": -1})
        assert bad.status_code == 422  # a refused config never counts, nor waits
    finally:
        app.dependency_overrides.pop(settings_dep, None)
        for run_id in started:
            with contextlib.suppress(RunError):
                manager.stop(run_id)


# --- bad configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "loc"), [
    ({"optimizer": "adagrad"}, ["body", "optimizer"]),
    ({"lr": -0.1}, ["body", "lr"]),
    ({"lr": 0}, ["body", "lr"]),
    ({"batch_size": 0}, ["body", "batch_size"]),
    ({"epochs": 51}, ["body", "epochs"]),
    ({"epochs": 0}, ["body", "epochs"]),
    ({"batch_size": 4096}, ["body", "batch_size"]),
    ({"max_steps_per_epoch": 10**6}, ["body", "max_steps_per_epoch"]),
    ({"model": "vgg16"}, ["body", "model"]),
    ({"model": "autoencoder"}, ["body", "model"]),
    ({"model": "no_such_net"}, ["body", "model"]),
    ({"activation": "swish"}, ["body", "activation"]),
    ({"dropout": 1.0}, ["body", "dropout"]),
    ({"schedule": "linear"}, ["body", "schedule"]),
    ({"data": {"name": "imagenet"}}, ["body", "data", "name"]),
    ({"data": {"name": "mnist"}}, ["body", "data.name"]),
    ({"data": {"name": "digits", "root": "/etc"}}, ["body", "data", "root"]),
    ({"data": {"name": "upload", "archive": "/etc/passwd"}}, ["body", "data", "name"]),
    ({"data": {"name": "digits", "classes": [3]}}, ["body", "data", "classes"]),
    # Known only against the dataset: refused when planning, never in the worker.
    ({"data": {"name": "digits", "classes": [3, 3]}}, ["body", "data.classes"]),
    ({"data": {"name": "digits", "classes": [0, 2, 2, 5]}}, ["body", "data.classes"]),
    ({"data": {"name": "digits", "classes": [0, 10]}}, ["body", "data.classes"]),
    ({"data": {"name": "shapes", "classes": [1, 6]}}, ["body", "data.classes"]),
    ({"model": "alexnet"}, ["body", "data.image_size"]),
    ({"model": "googlenet", "data": {"name": "digits", "image_size": 12}},
     ["body", "data.image_size"]),
    ({"data": {"name": "shapes", "image_size": 200}}, ["body", "data.image_size"]),
    ({"data": {"name": "mnist5k", "image_size": 8, "fit": "pad"}}, ["body", "data.image_size"]),
    ({"augment": {"shift": 17}}, ["body", "augment", "shift"]),
    ({"device": "tpu"}, ["body", "device"]),
    ({"surprise": 1}, ["body", "surprise"]),
    ({"init_from": {"run_id": "0123456789ab"}}, ["body", "init_from.run_id"]),
    ({"init_from": {"run_id": "../../etc"}}, ["body", "init_from", "run_id"]),
])  # fmt: skip
def test_bad_configs_are_refused_naming_the_field(client, change, loc):
    response = client.post("/api/runs", json={**TINY, **change})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_the_server_lacks_is_refused(client):
    response = client.post("/api/runs", json={**TINY, "device": "cuda"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "device"]


def test_a_transfer_must_name_existing_layers(client, finished):
    run_id, _ = finished
    for freeze, message in ((["features"], "no layer is called 'features'"),
                            (["classifier"], "would be frozen")):  # fmt: skip
        body = {**TINY, "init_from": {"run_id": run_id, "freeze": freeze}}
        response = client.post("/api/runs", json=body)
        assert response.status_code == 422
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "init_from.freeze"] and message in detail["msg"]
    before = len(client.get("/api/runs").json())
    for data, replace_head, loc, message in (
        ({"name": "digits", "classes": [0, 1]}, False, "init_from.replace_head",
         "predicts 10 classes and this task has 2"),  # the old head has 10 outputs
        ({"name": "digits", "channels": 3}, True, "data.channels", "1-channel images"),
        ({"name": "digits", "classes": [0, 0, 1]}, True, "data.classes", "more than once"),
    ):  # fmt: skip
        body = {**TINY, "data": data,
                "init_from": {"run_id": run_id, "replace_head": replace_head}}  # fmt: skip
        response = client.post("/api/runs", json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", loc] and message in detail["msg"]
    assert len(client.get("/api/runs").json()) == before  # refused before any run was made


# --- a run through the API -----------------------------------------------------------------------


def test_the_stream_sends_every_event_with_its_id_then_done(client, finished):
    run_id, messages = finished
    *events, done = messages
    assert done["event"] == "done" and "id" not in done
    assert [int(m["id"]) for m in events] == list(range(1, len(events) + 1))
    kinds = [json.loads(m["data"])["kind"] for m in events]
    assert kinds[:3] == ["status", "status", "start"] and kinds[-1] == "end"
    assert kinds.count("step") == 6 and kinds.count("epoch") == 2
    record = client.get(f"/api/runs/{run_id}").json()
    assert record["status"] == "completed" and record["last_event_id"] == len(events)
    assert record["label"] == "tiny" and record["model"] == "mlp" and record["dataset"] == "digits"
    assert record["summary"]["epochs_completed"] == 2
    listed = client.get("/api/runs").json()
    assert run_id in [run["id"] for run in listed]
    completed = client.get("/api/runs", params={"status": "completed"}).json()
    assert all(run["status"] == "completed" for run in completed)
    assert client.get("/api/runs", params={"status": "bogus"}).status_code == 422


@pytest.mark.parametrize("seen", [0, 1, 5, 13])
def test_last_event_id_resumes_exactly_after_it(client, finished, seen):
    run_id, messages = finished
    events = messages[:-1]
    resumed = sse(client.get(f"/api/runs/{run_id}/events",
                             headers={"Last-Event-ID": str(seen)}).text)[:-1]  # fmt: skip
    assert resumed == events[seen:]
    assert events[:seen] + resumed == events  # nothing lost, nothing twice


def test_a_meaningless_last_event_id_replays_everything(client, finished):
    run_id, messages = finished
    replay = client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "abc"})
    assert sse(replay.text) == messages


def test_control_of_finished_unknown_and_malformed_runs(client, finished):
    run_id, _ = finished
    owner = {"X-Run-Token": TOKENS[run_id]}
    for action in ("pause", "resume", "stop"):
        response = client.post(f"/api/runs/{run_id}/{action}", headers=owner)
        assert response.status_code == 409 and "already ended" in response.json()["detail"]
        assert client.post(f"/api/runs/000000000000/{action}").status_code == 404
        assert client.post(f"/api/runs/..%2F..%2Fetc/{action}").status_code in (404, 422)
    for path in ("", "/events", "/metrics.json", "/metrics.csv", "/checkpoints"):
        assert client.get(f"/api/runs/000000000000{path}").status_code == 404
        assert client.get(f"/api/runs/NOT-AN-ID{path}").status_code == 422


def test_metrics_exports_agree_with_the_events(client, finished):
    run_id, messages = finished
    events = [json.loads(m["data"]) for m in messages[:-1]]
    steps = [e for e in events if e["kind"] == "step"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    metrics = client.get(f"/api/runs/{run_id}/metrics.json").json()
    assert [row["loss"] for row in metrics["steps"]] == [e["loss"] for e in steps]
    assert [row["val_accuracy"] for row in metrics["epochs"]] == [e["val_accuracy"] for e in epochs]
    response = client.get(f"/api/runs/{run_id}/metrics.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="run-{run_id}-metrics.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["kind"] for r in rows] == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch"]
    assert [float(r["loss"]) for r in rows if r["kind"] == "step"] == [e["loss"] for e in steps]
    assert [float(r["val_loss"]) for r in rows if r["kind"] == "epoch"] == [
        e["val_loss"] for e in epochs
    ]


def test_the_final_checkpoint_holds_the_trained_network(client, manager, finished):
    """Its validation accuracy, recomputed with torch from the saved weights, is the one the
    last epoch event reported (no early stopping: the final weights are the last epoch's)."""
    run_id, messages = finished
    listing = client.get(f"/api/runs/{run_id}/checkpoints").json()
    assert [c["file"] for c in listing] == ["epoch-001.safetensors", "epoch-002.safetensors",
                                            "final.safetensors"]  # fmt: skip
    assert listing[-1]["final"] and listing[-1]["epoch"] == 2 and listing[-1]["step"] == 6
    assert listing[-1]["layers"] == ["hidden.0", "hidden.2", "classifier"]
    assert listing[-1]["head"] == "classifier"
    last_epoch = [json.loads(m["data"]) for m in messages if '"kind":"epoch"' in m["data"]][-1]
    assert listing[-1]["val_accuracy"] == pytest.approx(last_epoch["val_accuracy"])

    checkpoint = load_checkpoint(manager.checkpoint_for_run(run_id))
    trained = checkpoint.trained
    config = client.get(f"/api/runs/{run_id}").json()["config"]
    split = load_dataset(DataConfig.from_dict(config["data"]))
    if split.input_shape != trained.input_shape:
        split = resize_split(split, trained.input_shape[1])
    mean = torch.tensor(trained.mean).view(1, -1, 1, 1)
    std = torch.tensor(trained.std).view(1, -1, 1, 1)
    with torch.no_grad():
        predicted = checkpoint.model((split.val_images - mean) / std).argmax(1)
    accuracy = (predicted == split.val_labels).float().mean().item()
    assert accuracy == pytest.approx(last_epoch["val_accuracy"], abs=1e-6)
    # what /features needs: the loaded-model form of a trained run
    assert checkpoint.loaded_model().weights.source == "trained"


# --- the CLI writes the same records -------------------------------------------------------------


def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_cli_refuses_a_bad_config_naming_the_field(data_dir):
    err = io.StringIO()
    code = train_command(_cli_args("--optimizer", "adagrad", "--batch-size", "0"),
                         Settings(data_dir=data_dir), err)  # fmt: skip
    assert code == 2
    assert "error: optimizer:" in err.getvalue() and "error: batch_size:" in err.getvalue()


def test_a_cli_run_is_listed_and_streamed_by_the_api(client, data_dir):
    env = {**os.environ, "CNNVIZ_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "train", "--model", "mlp", "--data", "digits",
         "--limit", "300", "--epochs", "2", "--max-steps", "3", "--batch-size", "32",
         "--label", "from the terminal"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "epoch 2/2: train loss" in done.stderr and ": completed;" in done.stderr
    run_id = done.stderr.split("run ", 1)[1].split(" ", 1)[0]
    record = client.get(f"/api/runs/{run_id}").json()
    assert (record["source"], record["status"], record["label"]) == (
        "cli",
        "completed",
        "from the terminal",
    )
    events = sse(client.get(f"/api/runs/{run_id}/events").text)
    kinds = [json.loads(m["data"])["kind"] for m in events[:-1]]
    assert kinds.count("step") == 6 and kinds[-1] == "end"
    assert [int(m["id"]) for m in events[:-1]] == list(range(1, len(kinds) + 1))
    assert client.get(f"/api/runs/{run_id}/checkpoints").json()[-1]["file"] == "final.safetensors"


# --- a failed run explains itself ----------------------------------------------------------------

DIVERGING = {"model": "lenet5", "data": {"name": "mnist5k", "fit": "pad"}, "lr": 10.0,
             "epochs": 3, "max_steps_per_epoch": 20}  # fmt: skip


def test_a_diverged_run_has_its_status_and_explanation_everywhere(client):
    """lr 10 on the /train page's LeNet-5: status `diverged` in the record, the list (filtered
    by status) and the stream; the explanation in both languages names the rate."""
    created = client.post("/api/runs", json=DIVERGING).json()
    messages = sse(client.get(created["events_url"]).text)
    events = [json.loads(m["data"]) for m in messages if m.get("event") != "done"]
    diverged = next(e for e in events if e["kind"] == "diverged")
    assert events[-1] == {**events[-1], "kind": "end", "reason": "diverged"}
    record = client.get(f"/api/runs/{created['id']}").json()
    assert record["status"] == "diverged"
    assert record["summary"]["diagnosis"] == diverged["diagnosis"]
    assert record["summary"]["diagnosis"]["findings"][0]["cause"] == "lr_too_high"
    ko, en = record["summary"]["explanation"]["ko"], record["summary"]["explanation"]["en"]
    assert en == diverged["explanation"]["en"] and len(ko) == len(en) >= 2
    assert en[0].startswith("By step 2 the loss had risen from 2.3")
    assert en[1].startswith("Learning rate too high: at 10 ")
    assert ko[1].startswith("학습률이 너무 큽니다. 10에서는")
    listed = client.get("/api/runs", params={"status": "diverged"}).json()
    assert created["id"] in [r["id"] for r in listed]
    assert created["id"] not in [
        r["id"] for r in client.get("/api/runs", params={"status": "completed"}).json()
    ]


def test_the_cli_reports_a_diverged_run_with_its_explanation(data_dir):
    err = io.StringIO()
    args = _cli_args("--lr", "10", "--max-steps", "20", "--lang", "ko")
    code = train_command(args, Settings(data_dir=data_dir), err)
    out = err.getvalue()
    assert code == 1 and ": diverged;" in out
    assert "diverged at step 2: the loss rose far above where it started" in out
    assert "  학습률이 너무 큽니다. 10에서는" in out
