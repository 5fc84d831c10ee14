"""GET /api/runs/{id}/export on a run trained to its end by a real worker: every format compared
with the run's own checkpoint (its tensors, its logits through onnxruntime and through the
standalone file in a clean interpreter), made once per checkpoint, and refusals: a run without
weights (409), an unknown format (422 naming the field), an unknown run (404)."""

from __future__ import annotations

import io
import json
import zipfile

import onnxruntime
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load

import app.runs.export as run_exports
from app.deps import settings_dep
from app.main import app
from app.runs.manager import RunLimits, RunManager, use_run_manager
from app.runs.store import RunChanges, SQLiteRunStore
from app.settings import Settings
from app.uploaded_models import UploadedModels, get_uploaded_models
from cnncore.checkpoint import load_checkpoint
from cnncore.export.onnx_file import OPSET
from tests.app.trained_runs import train_to_end
from tests.cnncore.standalone import standalone_logits

RUN = {"label": "to take away", "model": "lenet5", "data": {"name": "digits", "limit": 300},
       "epochs": 2, "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip

client = TestClient(app)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-runs")
    store = SQLiteRunStore(folder / "cnnviz.sqlite3")
    manager = RunManager(store, folder / "checkpoints", RunLimits(max_concurrent=1))
    previous = use_run_manager(manager)
    try:
        run_id = train_to_end(client.post, manager, RUN)
        yield run_id, manager
    finally:
        use_run_manager(previous)
        manager.close()
        store.close()


def relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    found, expected = found.double(), expected.double()
    return float((found - expected).abs().max() / expected.abs().max())


def test_every_format_comes_from_the_runs_checkpoint(trained, tmp_path):
    run_id, manager = trained
    checkpoint = load_checkpoint(manager.checkpoint_for_run(run_id))
    stem = f"cnnviz_lenet5_{run_id}"
    answer = client.get(f"/api/runs/{run_id}/export", params={"format": "zip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert f'filename="{stem}.zip"' in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        archive.extractall(tmp_path)
    # each single format is the same file as in the zip
    for fmt, suffix in (("onnx", ".onnx"), ("safetensors", ".safetensors"), ("py", ".py"),
                        ("card", ".md"), ("card_json", ".json")):  # fmt: skip
        single = client.get(f"/api/runs/{run_id}/export?format={fmt}")
        assert single.status_code == 200, single.text
        assert single.content == (tmp_path / f"{stem}{suffix}").read_bytes()
    tensors = load((tmp_path / f"{stem}.safetensors").read_bytes())
    state = checkpoint.model.state_dict()
    assert set(tensors) == set(state)
    assert all(torch.equal(tensors[k], v) for k, v in state.items())
    # the run's logits: torch, onnxruntime, the standalone file
    torch.manual_seed(0)
    x = torch.randn(1, *checkpoint.trained.input_shape)
    with torch.no_grad():
        expected = checkpoint.model(x)
    session = onnxruntime.InferenceSession(str(tmp_path / f"{stem}.onnx"))
    (found,) = session.run(None, {"input": x.numpy()})
    assert relative_error(torch.from_numpy(found), expected) <= 1e-5
    assert relative_error(standalone_logits(tmp_path / f"{stem}.py"), expected) <= 1e-5
    card = json.loads((tmp_path / f"{stem}.json").read_text())
    assert card["run"]["id"] == run_id and card["run"]["label"] == "to take away"
    assert card["data"]["classes"] == list(checkpoint.trained.labels)
    assert card["files"]["onnx_opset"] == OPSET
    epochs = client.get(f"/api/runs/{run_id}/metrics.json").json()["epochs"]
    assert [r["val_accuracy"] for r in card["metrics"]["epochs"]] == \
        [r["val_accuracy"] for r in epochs]  # fmt: skip
    assert len(epochs) == 2


def test_an_export_is_made_once_per_checkpoint(trained, monkeypatch):
    run_id, _ = trained
    made = []
    real = run_exports.write_export

    def counted(*args, **kwargs):
        made.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(run_exports, "write_export", counted)
    first = client.get(f"/api/runs/{run_id}/export?format=py")
    second = client.get(f"/api/runs/{run_id}/export?format=py")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert made == []  # made by the test above, kept since


def test_a_busy_server_refuses_with_retry_after(trained, monkeypatch):
    run_id, manager = trained
    monkeypatch.setattr(run_exports, "_sha256", lambda path: "f" * 64)  # nothing cached
    slots = run_exports._export_slots(1)
    app.dependency_overrides[settings_dep] = lambda: Settings(run_export_wait_seconds=0.05)
    assert slots.acquire(timeout=1)
    try:
        answer = client.get(f"/api/runs/{run_id}/export?format=card")
    finally:
        slots.release()
        app.dependency_overrides.pop(settings_dep)
    assert answer.status_code == 503 and "Retry-After" in answer.headers


def test_refusals_name_what_is_wrong(trained):
    run_id, manager = trained
    bad = client.get(f"/api/runs/{run_id}/export?format=pickle")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "format"]
    assert client.get("/api/runs/000000000000/export").status_code == 404
    # a run that ended without weights, and one still queued
    manager.store.create_run("00000000abcd", {**RUN, "data": {"name": "digits"}}, "web", "x")
    queued = client.get("/api/runs/00000000abcd/export?format=onnx")
    assert queued.status_code == 409 and "queued" in queued.json()["detail"]
    manager.store.record("00000000abcd", [{"kind": "status", "status": "failed"}],
                         RunChanges(status="failed"))  # fmt: skip
    failed = client.get("/api/runs/00000000abcd/export?format=onnx")
    assert failed.status_code == 409 and "no checkpoint" in failed.json()["detail"]


def test_the_exported_onnx_uploaded_again_gives_the_runs_logits(trained, tmp_path):
    run_id, manager = trained
    checkpoint = load_checkpoint(manager.checkpoint_for_run(run_id))
    onnx_file = client.get(f"/api/runs/{run_id}/export?format=onnx")
    assert onnx_file.status_code == 200
    settings = Settings(data_dir=tmp_path)
    uploaded = UploadedModels.from_settings(settings)
    app.dependency_overrides[get_uploaded_models] = lambda: uploaded
    try:
        labels = "\n".join(checkpoint.trained.labels) + "\n"
        files = {"file": ("run.onnx", onnx_file.content, "application/octet-stream"),
                 "labels": ("labels.txt", labels.encode(), "text/plain")}  # fmt: skip
        answer = client.post("/api/uploaded-models", data={"name": "my run"}, files=files)
        assert answer.status_code == 201, answer.text
        info = answer.json()["model"]
        assert info["input_shape"] == list(checkpoint.trained.input_shape)
        assert info["labels"] == list(checkpoint.trained.labels)
        module = uploaded.module(info["id"])
        seeded = torch.Generator().manual_seed(5)
        x = torch.randn(4, *checkpoint.trained.input_shape, generator=seeded)
        with torch.no_grad():
            assert relative_error(module(x), checkpoint.model(x)) <= 1e-5
    finally:
        app.dependency_overrides.pop(get_uploaded_models, None)
        uploaded.close()
