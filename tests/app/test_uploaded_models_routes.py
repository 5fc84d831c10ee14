"""Uploading an ONNX model: stored with an id, a name, labels and an owner token; then usable by
name on /api/features and the summary like a zoo model; a hostile corpus answered 4xx with the
server healthy and its memory bounded."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.feature_cache import get_feature_cache
from app.main import app
from app.settings import Settings
from app.uploaded_models import UploadedModels, get_uploaded_models
from cnncore.features import prepare_input
from cnncore.images import sample_image
from cnncore.models import build_model, get_model_info
from cnncore.seeding import seeded
from cnncore.uploaded import uploaded_weights
from tests.app.uploads import onnx_export

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cnncore"))
from onnx_hostile import hostile_corpus  # noqa: E402  (the corpus the core tests use)

ROOT = Path(__file__).resolve().parents[2]
LABELS = "\n".join(f"class {i}" for i in range(10)) + "\n"


@pytest.fixture(scope="module")
def tinyvgg() -> tuple[torch.nn.Module, bytes]:
    with seeded(3):
        model = build_model("tinyvgg")
    return model, onnx_export(model, (3, 64, 64))


@pytest.fixture
def store(tmp_path):
    settings = Settings(data_dir=tmp_path, onnx_max_models=3)
    made = UploadedModels.from_settings(settings)
    app.dependency_overrides[get_uploaded_models] = lambda: made
    app.dependency_overrides[settings_dep] = lambda: settings
    yield made
    made.close()
    for dependency in (get_uploaded_models, settings_dep):
        app.dependency_overrides.pop(dependency, None)


client = TestClient(app)


def upload(data: bytes, name: str = "my tinyvgg", labels: str | None = LABELS):
    files = {"file": ("model.onnx", data, "application/octet-stream")}
    if labels is not None:
        files["labels"] = ("labels.txt", labels.encode(), "text/plain")
    return client.post("/api/uploaded-models", data={"name": name}, files=files)


def test_upload_list_use_and_delete(store, tinyvgg, tmp_path):
    model, data = tinyvgg
    answer = upload(data)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    token, info = created["owner_token"], created["model"]
    name = info["model"]
    assert name == f"onnx_{info['id']}" and info["title"] == "my tinyvgg"
    assert info["input_shape"] == [3, 64, 64] and info["output_shape"] == [10]
    assert info["labels"] == [f"class {i}" for i in range(10)] and info["num_classes"] == 10
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert (tmp_path / "models" / info["id"] / "model.onnx").read_bytes() == data
    assert [m["id"] for m in client.get("/api/uploaded-models").json()] == [info["id"]]
    assert client.get(f"/api/uploaded-models/{info['id']}").json() == info

    # /features by name: the model's own maps and predictions with its labels
    features = client.post("/api/features", data={"model": name, "sample": "flower"})
    assert features.status_code == 200, features.text
    body = features.json()
    layers = [layer["name"] for layer in body["layers"]]
    assert layers[:3] == ["block1.conv1", "block1.relu1", "block1.conv2"]
    x = prepare_input(uploaded_weights(get_model_info(name).uploaded),
                      sample_image("flower")).tensor  # fmt: skip
    with torch.no_grad():
        probs = torch.softmax(model(x)[0], 0)
    top = body["predictions"][0]
    assert top["label"] == f"class {int(probs.argmax())}"
    assert top["prob"] == pytest.approx(float(probs.max()), rel=1e-5)

    summary = client.get(f"/api/models/{name}/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["total_params"] == info["parameters"]
    assert summary.json()["layers"][0]["name"] == "block1.conv1"

    path = f"/api/uploaded-models/{info['id']}"
    assert client.delete(path).status_code == 401
    assert client.delete(path, headers={"X-Model-Token": "x" * 32}).status_code == 403
    assert client.delete(path, headers={"X-Model-Token": token}).status_code == 204
    assert not (tmp_path / "models" / info["id"]).exists()
    assert client.get(path).status_code == 404
    get_feature_cache().models.clear()
    gone = client.post("/api/features", data={"model": name, "sample": "flower"})
    assert gone.status_code == 422 and gone.json()["detail"][0]["type"] == "unknown_model"


def test_a_stored_model_is_found_again_after_a_restart(store, tinyvgg, tmp_path):
    info = upload(tinyvgg[1], labels=None).json()["model"]
    store.close()  # the server stops: the registry forgets the model
    again = UploadedModels.from_settings(Settings(data_dir=tmp_path))
    try:
        assert [r.id for r in again.list()] == [info["id"]] and again.get(info["id"]).labels is None
        module = again.module(info["id"])
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(module(x), tinyvgg[0](x), rtol=1e-5, atol=1e-6)
    finally:
        again.close()


def test_limits_on_count_labels_and_name(store, tinyvgg):
    assert upload(tinyvgg[1], labels="a\n" * 1001).json()["detail"][0]["type"] == "labels_too_many"
    assert upload(tinyvgg[1], name="").status_code == 422
    for _ in range(3):
        assert upload(tinyvgg[1]).status_code == 201
    full = upload(tinyvgg[1])
    assert full.status_code == 409 and len(store.list()) == 3


def returning(value):
    return lambda: value  # a dependency without parameters (FastAPI reads its signature)


def test_the_size_limits_name_their_settings(tinyvgg, tmp_path):
    """What an AlexNet run's export (57 M values, 228 MB) meets on a server with the default
    limits (docs/ONNX.md): a refusal naming the limit and the setting that raises it."""
    _, data = tinyvgg
    for limits, status, kind in (
        ({"onnx_max_parameters": 1000}, 422, "onnx_too_many_parameters"),
        ({"onnx_max_bytes": len(data) - 1}, 413, "too_large"),
    ):
        settings = Settings(data_dir=tmp_path, **limits)
        made = UploadedModels.from_settings(settings)
        app.dependency_overrides[get_uploaded_models] = returning(made)
        app.dependency_overrides[settings_dep] = returning(settings)
        try:
            answer = upload(data)
        finally:
            made.close()
            for dependency in (get_uploaded_models, settings_dep):
                app.dependency_overrides.pop(dependency, None)
        assert answer.status_code == status, answer.text
        item = answer.json()["detail"][0]
        assert item["type"] == kind and item["ctx"]["limit"] == next(iter(limits.values()))
        if status == 413:
            assert "CNNVIZ_ONNX_MAX_BYTES" in item["msg"]
    for language in ("en", "ko"):
        texts = json.loads((ROOT / "static" / "i18n" / language / "common.json").read_text())
        assert "CNNVIZ_ONNX_MAX_PARAMETERS" in texts["error.type.onnx_too_many_parameters"]
        assert "CNNVIZ_ONNX_MAX_BYTES" in texts["error.type.onnx_too_large"]


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_hostile_corpus_is_refused_with_the_server_healthy(store, tinyvgg):
    corpus = hostile_corpus(tinyvgg[1])
    upload(corpus["100000_nodes"][0])  # first use: imports and allocator pools settle
    before = rss_bytes()
    for name, (data, codes) in corpus.items():
        answer = upload(data, name=name)
        assert 400 <= answer.status_code < 500, (name, answer.text)
        assert answer.json()["detail"][0]["type"] in codes, name
        assert answer.json()["detail"][0]["loc"] == ["body", "model"]
    # nothing it declared was allocated: 2 GiB of weights, 100 000 nodes' modules
    assert rss_bytes() - before < 150_000_000
    assert client.get("/api/health").json()["status"] == "ok"
    assert store.list() == []


def test_receptive_fields_units_and_explanations_take_the_uploaded_name(store, tinyvgg):
    model, data = tinyvgg
    name = upload(data).json()["model"]["model"]
    # the receptive field is the architecture's: the zoo tinyvgg's answer, name aside
    query = {"layer": "block2.conv2", "y": 3, "x": 5}
    mine = client.get(f"/api/models/{name}/receptive-field", params=query).json()
    zoo = client.get("/api/models/tinyvgg/receptive-field", params=query).json()
    assert mine == zoo and mine["size"] == {"height": 14, "width": 14}
    fields = client.get(f"/api/models/{name}/receptive-fields").json()
    assert fields["model"] == name and fields["layers"][0]["name"] == "block1.conv1"
    erf = client.post("/api/receptive-field/effective", json={"model": name, "samples": 2})
    assert erf.status_code == 200 and erf.json()["network"] == name

    result = client.post("/api/features", data={"model": name, "sample": "flower"}).json()
    unit = client.get(f"/api/features/{result['id']}/unit",
                      params={"layer": "block1.conv2", "channel": 1, "y": 3, "x": 4})  # fmt: skip
    assert unit.status_code == 200, unit.text
    x = prepare_input(
        uploaded_weights(get_model_info(name).uploaded), sample_image("flower")
    ).tensor
    with torch.no_grad():
        block = model.block1
        expected = block.conv2(block.relu1(block.conv1(x)))[0, 1, 3, 4]
    assert unit.json()["value"] == pytest.approx(float(expected), rel=1e-5, abs=1e-6)
    explained = client.post("/api/explanations", json={"result": result["id"]})
    assert explained.status_code == 200, explained.text
    assert explained.json()["target"] == result["predictions"][0]["index"]
    assert explained.json()["label"] == result["predictions"][0]["label"]


class Exploit:
    """What a hostile .pt holds: unpickling it would call os.getcwd (weights_only refuses)."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


def upload_state(data: bytes, filename: str, architecture: str):
    files = {"file": (filename, data, "application/octet-stream")}
    form = {"name": "homework", "architecture": architecture}
    return client.post("/api/uploaded-models", data=form, files=files)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_state_dict_for_a_zoo_architecture(store, suffix, tmp_path):
    from safetensors.torch import save

    with seeded(4):
        model = build_model("tinyvgg", in_channels=1, num_classes=4)  # grey, 4 classes
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if suffix == ".pt":
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    else:
        data = save(state)
    answer = upload_state(data, f"homework{suffix}", "tinyvgg")
    assert answer.status_code == 201, answer.text
    info = answer.json()["model"]
    assert info["model"] == f"weights_{info['id']}" and info["kind"] == "state_dict"
    assert info["input_shape"] == [1, 64, 64] and info["output_shape"] == [4]
    assert info["architecture"] == "tinyvgg"
    module = store.module(info["id"])
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model.eval()(x), rtol=0, atol=0)
    features = client.post("/api/features", data={"model": info["model"], "sample": "digit"})
    assert features.status_code == 200, features.text
    assert features.json()["layers"][0]["shape"] == [10, 62, 62]


def test_state_dicts_are_never_unpickled_and_must_fit_the_architecture(store):
    buffer = io.BytesIO()
    torch.save({"w": Exploit()}, buffer)
    refused = upload_state(buffer.getvalue(), "evil.pt", "tinyvgg")
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == (
        "weights_file_unreadable"
    )
    with seeded(0):
        other = build_model("lenet5").state_dict()
    buffer = io.BytesIO()
    torch.save(other, buffer)
    wrong = upload_state(buffer.getvalue(), "lenet.pt", "tinyvgg")
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["type"] == "weights_layout"
    unknown = upload_state(buffer.getvalue(), "lenet.pt", "nosuchnet")
    assert unknown.status_code in (404, 422)
    assert upload_state(b"x", "notes.txt", "tinyvgg").json()["detail"][0]["type"] == (
        "weights_file_kind"
    )
    assert store.list() == []


def test_several_server_processes_share_the_folder(tinyvgg, tmp_path):
    """Worker A stores a model; worker B (its own registry) finds it by name, then learns of
    its deletion when it next converts it. One process plays both: B's registry is emptied."""
    from cnncore.models import UnknownModelError, find_uploaded_with, registry
    from cnncore.uploaded import forget_uploaded_model

    earlier = list(registry._UPLOADED_FINDER)  # the server's own, put back afterwards

    settings = Settings(data_dir=tmp_path)
    first, second = (UploadedModels.from_settings(settings) for _ in range(2))
    try:
        record, _token = first.add(tinyvgg[1], "shared", None)
        forget_uploaded_model(record.name)  # as in B's process, started before the upload
        find_uploaded_with(second.find)
        assert get_model_info(record.name).default_input.as_tuple() == (3, 64, 64)
        assert second.get(record.id) == record
        first.delete(record.id)
        with pytest.raises(UnknownModelError):
            second.module(record.id)
        with pytest.raises(UnknownModelError):
            get_model_info(record.name)
    finally:
        find_uploaded_with(earlier[0] if earlier else None)
        first.close()
        second.close()


def test_an_uploaded_model_is_held_once(tinyvgg, tmp_path):
    """/features' cache keeps the very module the store converted, not a copy of it; and when
    the store's own LRU has dropped it while /features still holds it, the store takes that one
    back instead of converting the file again. A transfer-learning build still gets a copy."""
    from app.feature_cache import FeatureCache

    settings = Settings(data_dir=tmp_path, onnx_models_cached=1)
    store = UploadedModels.from_settings(settings)
    try:
        first, _token = store.add(tinyvgg[1], "first", None)
        shown = FeatureCache(settings).model(first.name).loaded.model
        assert shown is store.module(first.id) and not shown.training
        store.add(tinyvgg[1], "second", None)  # the store's LRU (1 model) drops the first
        assert store.module(first.id) is shown  # held by /features: taken back, not converted
        built = build_model(first.name)
        assert built is not shown
        for mine, theirs in zip(built.parameters(), shown.parameters(), strict=True):
            assert torch.equal(mine, theirs) and mine.data_ptr() != theirs.data_ptr()
    finally:
        store.close()
