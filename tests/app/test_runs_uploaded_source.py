"""A run that starts from an uploaded model (`init_from.weights` "uploaded"): an ONNX file
exported from the zoo's TinyVGG becomes the backbone, its Gemm head is replaced for the
dataset's classes, the worker converts the stored file again; only the model's owner may train
from it; a model without a classifier head, or whose input the pictures cannot take, is refused
naming the field; the memory estimate counts the conversion."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save
from torch import nn

from app.deps import settings_dep
from app.main import app
from app.runs.budget import check_run_budget
from app.runs.manager import RunLimits
from app.runs.spec import RunSpec, plan_run
from app.runs.uploaded_source import uploaded_source
from app.runs.worker import build_trainer
from app.schemas.runs import RunCreate
from app.settings import Settings
from app.uploaded_models import UploadedModels, get_uploaded_models, onnx_limits
from cnncore.checkpoint import load_checkpoint
from cnncore.errors import CNNCoreError
from cnncore.models import build_model
from cnncore.onnx_import import import_onnx
from cnncore.seeding import seeded
from cnncore.training import TrainConfig
from tests.app.trained_runs import run_services, train_to_end
from tests.app.uploads import onnx_export
from tests.cnncore.no_head import PooledScores

client = TestClient(app)
HEAD = "classifier"  # TinyVGG's head, named as the zoo names it


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("cnnviz-data"))


@pytest.fixture(scope="module", autouse=True)
def services(settings):
    models = UploadedModels.from_settings(settings)
    limits = RunLimits(max_concurrent=1, onnx=onnx_limits(settings))
    with run_services(app, settings, limits, {get_uploaded_models: models}) as manager:
        yield models, manager
    models.close()


def settings_of() -> Settings:
    return client.app.dependency_overrides[settings_dep]()


def upload(data: bytes, name: str) -> tuple[str, str]:
    files = {"file": ("model.onnx", data, "application/octet-stream")}
    answer = client.post("/api/uploaded-models", data={"name": name}, files=files)
    assert answer.status_code == 201, answer.text
    return answer.json()["model"]["model"], answer.json()["owner_token"]


@pytest.fixture(scope="module")
def tinyvgg():
    """The zoo's TinyVGG (10 classes, 3×32×32), uploaded as ONNX: (network, name, token)."""
    with seeded(3):
        network = build_model("tinyvgg", input_size=(32, 32))
    return (network, *upload(onnx_export(network, (3, 32, 32)), "my tinyvgg"))


def body(name: str, **init) -> dict:
    return {"model": "lenet5", "epochs": 1, "batch_size": 16, "max_steps_per_epoch": 3,
            "data": {"name": "digits", "channels": 3, "limit": 60, "classes": [0, 1, 2, 3]},
            "init_from": {"weights": "uploaded", "model": name, **init}}  # fmt: skip


def test_a_run_trains_from_an_uploaded_onnx_with_its_backbone_frozen(tinyvgg, services):
    network, name, token = tinyvgg
    manager = services[1]
    headers = {"X-Model-Token": token}
    post = lambda path, json: client.post(path, json=json, headers=headers)  # noqa: E731
    run_id = train_to_end(post, manager, body(name, freeze_backbone=True))
    config = client.get(f"/api/runs/{run_id}").json()["config"]
    assert config["model"] == name
    assert config["init_from"]["freeze"] == [
        "block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2"
    ]  # fmt: skip
    assert config["init_from"]["weights_file"].endswith("model.onnx")
    source = network.state_dict()
    tuned = load_file(manager.checkpoint_for_run(run_id))
    assert sorted(tuned) == sorted(source)  # the file's layers, under the zoo's names
    for key, value in source.items():
        if key.startswith(HEAD):
            assert tuned[key].shape[0] == 4 and not torch.equal(tuned[key][:4], value[:4])
        else:
            assert torch.equal(tuned[key], value), key  # frozen: bit for bit the upload's
    # the checkpoint loads back onto the classifier form of the uploaded network
    checkpoint = load_checkpoint(manager.checkpoint_for_run(run_id))
    assert checkpoint.trained.input_shape == (3, 32, 32)  # 8×8 digits grown to the upload's
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = network.flatten(network.block2(network.block1(x)))
        expected = features @ tuned[f"{HEAD}.weight"].T + tuned[f"{HEAD}.bias"]
        assert torch.allclose(checkpoint.model(x), expected, rtol=1e-5, atol=1e-6)
    # taken away: no PyTorch source for a converted graph (422), its ONNX gives the run's logits
    python = client.get(f"/api/runs/{run_id}/export", params={"format": "py"})
    assert python.status_code == 422 and python.json()["detail"][0]["type"] == "export_no_python"
    exported = client.get(f"/api/runs/{run_id}/export", params={"format": "zip"})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        names = sorted(archive.namelist())
        assert [n.rsplit(".", 1)[1] for n in names] == ["json", "md", "onnx", "safetensors"]
        again = import_onnx(archive.read(names[2]), onnx_limits(settings_of()))
    with torch.no_grad():
        logits = checkpoint.model(x)
        assert float((again.module(x) - logits).abs().max() / logits.abs().max()) <= 1e-5


def test_the_worker_builds_the_upload_again_with_a_new_head_at_step_0(tinyvgg, services):
    """What the worker trains before its first step, rebuilt from the stored file: every
    backbone weight is the uploaded model's, the head is new (seeded) for 4 classes."""
    network, name, token = tinyvgg
    models, manager = services
    settings = client.app.dependency_overrides[settings_dep]()
    source = lambda n: uploaded_source(models, n, settings.run_models)  # noqa: E731
    stored = plan_run(RunCreate(**body(name)), settings, manager.checkpoint_for_run,
                      uploaded_of=source)  # fmt: skip
    spec = RunSpec.of("0" * 12, stored, settings.checkpoints_dir / "x", None, 1)
    spec = replace(spec, source_limits=onnx_limits(settings))
    model = build_trainer(spec, lambda: False, lambda: False).model
    weights = model.state_dict()
    with seeded(0):  # the run's seed draws the new head
        head = nn.Linear(network.classifier.in_features, 4)
    for key, value in network.state_dict().items():
        if key.startswith(HEAD):
            assert torch.equal(weights[key], getattr(head, key.rsplit(".", 1)[1])), key
        else:
            assert torch.equal(weights[key], value), key
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen unless asked


def test_only_the_owner_trains_from_a_known_uploaded_model(tinyvgg):
    _, name, token = tinyvgg
    assert client.post("/api/runs", json=body(name)).status_code == 401
    wrong = client.post("/api/runs", json=body(name), headers={"X-Model-Token": "x" * 32})
    assert wrong.status_code == 403
    missing = client.post("/api/runs", json=body("onnx_" + "0" * 16),
                          headers={"X-Model-Token": token})  # fmt: skip
    assert missing.status_code == 422
    item = missing.json()["detail"][0]
    assert item["loc"] == ["body", "init_from.model"] and item["type"] == "unknown_model"


def refusal(name: str, token: str, **changes) -> dict:
    sent = body(name)
    sent["data"].update(changes)
    answer = client.post("/api/runs", json=sent, headers={"X-Model-Token": token})
    assert answer.status_code == 422, answer.text
    return answer.json()["detail"][0]


def test_refusals_name_the_field(tinyvgg):
    headless, token = upload(onnx_export(PooledScores(), (3, 16, 16)), "no head")
    item = refusal(headless, token)
    assert item["loc"] == ["body", "init_from.model"] and item["type"] == "no_output_layer"
    assert "classifier head" in item["msg"]
    _, name, token = tinyvgg
    item = refusal(name, token, channels=1)  # grey pictures, a colour network
    assert item["loc"] == ["body", "data.channels"] and "3-channel" in item["msg"]
    wide = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 22, 3))
    wide_name, wide_token = upload(onnx_export(wide, (3, 16, 24)), "wide")
    item = refusal(wide_name, wide_token)
    assert item["loc"] == ["body", "init_from.model"] and "16×24" in item["msg"]


def test_the_memory_estimate_counts_the_conversion_of_the_file(tinyvgg, services):
    """A limit the run fits without converting its source but not with: refused."""
    _, name, token = tinyvgg
    models = services[0]
    settings = client.app.dependency_overrides[settings_dep]()
    sent = {k: v for k, v in body(name).items() if k != "init_from"}
    config = TrainConfig.from_dict({**sent, "model": name, "device": "cpu"})
    without = check_run_budget(config, settings, channels=3, side=32, loaded_side=8,
                               native_channels=1, num_classes=4).peak_bytes  # fmt: skip
    file_bytes = (models.root / name.split("_")[1] / "model.onnx").stat().st_size
    tight = settings.model_copy(update={"max_run_memory_bytes": without + file_bytes})
    client.app.dependency_overrides[settings_dep] = lambda: tight
    try:
        item = refusal(name, token)
    finally:
        client.app.dependency_overrides[settings_dep] = lambda: settings
    assert item["type"] == "run_too_big"
    assert item["ctx"]["peak_gb"] == round((without + 3 * file_bytes) / 1e9, 2)


def test_an_uploaded_state_dict_trains_as_its_zoo_architecture(services):
    """A state dict for TinyVGG: the run is a TinyVGG run (its checkpoints need no upload to
    load), started from the uploaded tensors; an architecture runs may not train is refused."""
    models, manager = services
    with seeded(5):
        network = build_model("tinyvgg")
    data = save(network.state_dict())
    files = {"file": ("tinyvgg.safetensors", data, "application/octet-stream")}
    answer = client.post("/api/uploaded-models", data={"name": "my weights",
                         "architecture": "tinyvgg"}, files=files)  # fmt: skip
    assert answer.status_code == 201, answer.text
    name = answer.json()["model"]["model"]
    settings = client.app.dependency_overrides[settings_dep]()
    source = lambda n: uploaded_source(models, n, settings.run_models)  # noqa: E731
    stored = plan_run(RunCreate(**body(name)), settings, manager.checkpoint_for_run,
                      uploaded_of=source)  # fmt: skip
    assert stored["model"] == "tinyvgg" and stored["init_from"]["model"] == name
    spec = RunSpec.of("1" * 12, stored, settings.checkpoints_dir / "y", None, 1)
    weights = build_trainer(spec, lambda: False, lambda: False).model.state_dict()
    for key, value in network.state_dict().items():
        if key.startswith(HEAD):
            assert weights[key].shape[0] == 4
        else:
            assert torch.equal(weights[key], value), key
    with pytest.raises(CNNCoreError) as refused:
        uploaded_source(models, name, ("lenet5",))
    assert refused.value.field == "init_from.model" and "tinyvgg" in str(refused.value)
