"""/train's data: the dataset picker (`/api/train/datasets`), runs that start from bundled or
ImageNet weights (`init_from.weights`) with a new head and a frozen backbone, the held-out
split with per-class accuracy and a confusion matrix whose cells list the run's own
predictions (`/api/runs/{id}/heldout`), and a dataset's version kept by the run that uses it
(no deleting it meanwhile: 409)."""

import io
import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file

from app.datasets.service import Datasets, get_datasets
from app.main import app
from app.runs.heldout import HeldOutRuns, get_held_out_runs
from app.runs.manager import RunLimits, get_run_manager
from app.settings import Settings
from cnncore.datasets.desk_objects import generate_desk_objects
from cnncore.weights import WEIGHTS_DIR
from tests.app.trained_runs import run_services

client = TestClient(app)
CLASSES = ("mug", "book", "ball")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("cnnviz-data"))


@pytest.fixture(scope="module", autouse=True)
def services(settings):
    datasets = Datasets.from_settings(settings)
    held = HeldOutRuns(2, settings.heldout_max_values)
    others = {get_datasets: datasets, get_held_out_runs: held}
    with run_services(app, settings, RunLimits(max_concurrent=2), others) as manager:
        yield datasets, manager
    datasets.close()


def png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def add(dataset_id, headers, per_class, seed):
    pictures = generate_desk_objects(per_class, side=64, seed=seed)
    for class_id, name in enumerate(CLASSES):
        files = [("files", (f"{name}{seed}-{i}.png", png(p), "image/png"))
                 for i, (kind, p) in enumerate(pictures) if kind == name]  # fmt: skip
        response = client.post(f"/api/datasets/{dataset_id}/images", files=files,
                               data={"class_id": str(class_id)}, headers=headers)  # fmt: skip
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def desk():
    made = client.post("/api/datasets", json={"name": "desk", "classes": list(CLASSES)}).json()
    headers = {"X-Dataset-Token": made["owner_token"]}
    add(made["id"], headers, 10, seed=5)
    return made["id"], headers


def events(url):
    text = client.get(url).text  # returns when the run has ended
    found = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    return [event for event in found if "kind" in event]  # not the closing `done`


def transfer_body(dataset_id, **init):
    return {"model": "lenet5", "data": {"name": "user", "dataset": dataset_id},
            "epochs": 2, "batch_size": 8, "lr": 0.003,
            "init_from": {"weights": "bundled", "model": "tinyvgg", **init}}  # fmt: skip


@pytest.fixture(scope="module")
def finished(desk):
    """A finished run from the bundled TinyVGG, backbone frozen, and its events."""
    created = client.post("/api/runs", json=transfer_body(desk[0], freeze_backbone=True))
    assert created.status_code == 201, created.text
    run = created.json()
    return run["id"], events(run["events_url"])


def test_the_picker_lists_bundled_datasets_and_mine_with_versions(desk, finished):
    dataset_id, _ = desk
    answer = client.get("/api/train/datasets", params={"mine": [dataset_id, "0" * 16, "bad"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [d["name"] for d in body["bundled"]] == ["shapes", "digits", "mnist5k"]
    digits = body["bundled"][1]
    assert (digits["channels"], digits["side"], digits["images"]) == (1, 8, 1797)
    assert digits["class_names"] == list("0123456789")
    (mine,) = body["user"]
    stored = client.get(f"/api/datasets/{dataset_id}").json()
    assert mine["id"] == dataset_id and mine["version"] == stored["version"]
    assert [(c["name"], c["images"]) for c in mine["classes"]] == [(n, 10) for n in CLASSES]
    assert mine["images"] == 30 and mine["trainable"] and mine["reason"] is None
    assert body["missing"] == ["0" * 16, "bad"]
    run_version = client.get(f"/api/runs/{finished[0]}").json()["config"]["data"]
    assert run_version["dataset_version"] == stored["version"]  # the run made it kept
    assert mine["versions"] == []  # ...and it is the current one, listed as `version`


def test_a_run_from_bundled_weights_keeps_its_frozen_backbone(finished):
    run_id, stream = finished
    end = stream[-1]
    assert end["kind"] == "end" and end["reason"] == "completed", end
    record = client.get(f"/api/runs/{run_id}").json()
    config = record["config"]
    assert config["model"] == "tinyvgg"  # the source's architecture, whatever was asked
    assert config["init_from"]["freeze"] == [
        "block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2"
    ]  # fmt: skip
    start = next(e for e in stream if e["kind"] == "start")
    assert start["dataset"]["input_shape"] == [3, 64, 64]
    assert start["model"]["trainable_params"] == 10 * 13 * 13 * 3 + 3  # the new head only
    source = load_file(WEIGHTS_DIR / "tinyvgg.safetensors")
    tuned = load_file(client.app.dependency_overrides[get_run_manager]()
                      .checkpoint_for_run(run_id))  # fmt: skip
    for name, value in source.items():
        if name.startswith("classifier"):
            assert tuned[name].shape[0] == 3  # a new head for 3 classes
        else:
            assert torch.equal(tuned[name], value), name  # frozen: bit for bit the source's


def test_confusion_cells_list_the_runs_own_predictions(finished):
    run_id, stream = finished
    last = [e for e in stream if e["kind"] == "epoch"][-1]
    held = client.get(f"/api/runs/{run_id}/heldout")
    assert held.status_code == 200, held.text
    body = held.json()
    assert body["checkpoint"] == "final.safetensors" and body["epoch"] == 2
    assert body["confusion"] == last["confusion"]  # the run's own last evaluation
    assert body["accuracy"] == pytest.approx(last["val_accuracy"])
    start = next(e for e in stream if e["kind"] == "start")
    assert body["train_counts"] == start["dataset"]["train_counts"]
    assert body["val_counts"] == [2, 2, 2] and body["class_names"] == list(CLASSES)
    for c, row in enumerate(body["confusion"]):
        expected = row[c] / sum(row)
        assert body["per_class_accuracy"][c] == pytest.approx(expected)
    seen = []
    for true in range(3):
        for predicted in range(3):
            cell = client.get(f"/api/runs/{run_id}/heldout",
                              params={"true": true, "predicted": predicted}).json()  # fmt: skip
            assert cell["cell"] == [true, predicted]
            assert cell["total"] == len(cell["pictures"]) == body["confusion"][true][predicted]
            for picture in cell["pictures"]:
                assert (picture["true"], picture["predicted"]) == (true, predicted)
                assert 1 / 3 <= picture["confidence"] <= 1
                image = client.get(picture["url"])
                assert image.headers["content-type"] == "image/png"
                assert Image.open(io.BytesIO(image.content)).size == (64, 64)
                seen.append(picture["index"])
    assert sorted(seen) == list(range(6))  # every held-out picture in exactly one cell


def test_held_out_requests_are_checked(finished):
    run_id, _ = finished
    url = f"/api/runs/{run_id}/heldout"
    for params, field in (({"true": 0}, "predicted"), ({"true": 3, "predicted": 0}, "true"),
                          ({"predicted": 0}, "true")):  # fmt: skip
        answer = client.get(url, params=params)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == field
    assert client.get(f"{url}/6.png").status_code == 404
    assert client.get("/api/runs/0123456789ab/heldout").status_code == 404


def test_transfer_sources_that_do_not_fit_are_refused_naming_the_field(desk):
    dataset_id, _ = desk
    cases = (
        (transfer_body(dataset_id, model="lenet5"), "data.channels"),  # grey source, RGB data
        ({**transfer_body(dataset_id), "data": {"name": "user", "dataset": dataset_id,
                                                "image_size": 32}}, "data.image_size"),
        (transfer_body(dataset_id, model="autoencoder"), "init_from.model"),
        (transfer_body(dataset_id, model="resnet18"), "init_from.model"),  # ships none
        (transfer_body(dataset_id, model="tinyvgg_grey"), "init_from.model"),  # no such file
        (transfer_body(dataset_id, weights="imagenet", model="resnet18"), "init_from.model"),
        (transfer_body(dataset_id, run_id="0123456789ab"), "init_from.run_id"),  # both
        ({**transfer_body(dataset_id), "init_from": {"weights": "bundled"}}, "init_from.model"),
        (transfer_body(dataset_id, freeze=["block9"]), "init_from.freeze"),
    )  # fmt: skip
    for body, field in cases:
        answer = client.post("/api/runs", json=body)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["detail"][0]["loc"][-1] == field, (field, answer.json())
    grey = transfer_body(dataset_id, model="lenet5")
    grey["data"]["channels"] = 1
    grey["max_steps_per_epoch"], grey["epochs"] = 1, 1
    assert client.post("/api/runs", json=grey).status_code == 201  # as grey pictures: fits


def test_weights_listing_gives_the_run_options_a_bundled_file_records():
    """/train's form shows what a run from a bundled file will train (batch norm, width): the
    listing gives each bundled file's recorded options, read here from the files' headers."""
    from safetensors import safe_open

    def recorded(name: str) -> dict | None:
        with safe_open(str(WEIGHTS_DIR / name), framework="pt") as handle:
            return json.loads((handle.metadata() or {}).get("options", "null"))

    rows = {row["model"]: row for row in client.get("/api/weights").json()}
    (backbone,) = [f for f in rows["tinyvgg"]["weights"] if f["kind"] == "backbone"]
    assert backbone["options"] == recorded("tinyvgg_colour.safetensors")
    assert backbone["options"] == {"batch_norm": True, "width": 32}
    for model in ("lenet5", "mlp", "tinyvgg"):  # the zoo's own files: the zoo model as is
        (bundled,) = [f for f in rows[model]["weights"] if f["kind"] == "bundled"]
        assert bundled["options"] is None and recorded(bundled["file"]) is None, model
    assert all(f["options"] is None for r in rows.values() for f in r["weights"]
               if f["kind"] not in ("bundled", "backbone"))  # fmt: skip


def test_the_colour_backbone_is_offered_and_a_run_starts_from_it(desk):
    """The bundled colour backbone (TinyVGG pretrained on generated colour things) is listed
    with TinyVGG's weights as a transfer source, and a run named after it starts from its
    tensors: the frozen first block is the file's, bit for bit, with a new 3-class head."""
    rows = {row["model"]: row for row in client.get("/api/weights").json()}
    (backbone,) = [f for f in rows["tinyvgg"]["weights"] if f["kind"] == "backbone"]
    path = WEIGHTS_DIR / "tinyvgg_colour.safetensors"
    assert backbone["file"] == path.name and backbone["size"] == path.stat().st_size
    assert len(backbone["sha256"]) == 64 and rows["tinyvgg"]["chosen"] == "bundled"
    assert not any(f["kind"] == "backbone" for m, r in rows.items() if m != "tinyvgg"
                   for f in r["weights"])  # fmt: skip
    body = transfer_body(desk[0], model="tinyvgg_colour", freeze=["block1"])
    body["epochs"], body["max_steps_per_epoch"] = 1, 2
    created = client.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    stream = events(created.json()["events_url"])
    assert stream[-1]["kind"] == "end" and stream[-1]["reason"] == "completed", stream[-1]
    config = client.get(f"/api/runs/{created.json()['id']}").json()["config"]
    assert config["model"] == "tinyvgg" and config["init_from"]["model"] == "tinyvgg_colour"
    start = next(e for e in stream if e["kind"] == "start")
    source = load_file(path)
    tuned = load_file(client.app.dependency_overrides[get_run_manager]()
                      .checkpoint_for_run(created.json()["id"]))  # fmt: skip
    assert config["batch_norm"] is True and config["width"] == 32  # the backbone's options
    # the model card says what /train's form shows for this source (batch norm, 32 channels)
    exported = f"/api/runs/{created.json()['id']}/export"
    card = client.get(exported, params={"format": "card_json"}).json()
    assert card["model"]["batch_norm"] is True and card["model"]["width"] == 32
    markdown = client.get(exported, params={"format": "card"}).text.splitlines()
    assert "| batch norm | True |" in markdown
    assert "| channels per convolution | 32 |" in markdown
    # the first block's convolutions and batch norms, statistics held: the file's, bit for bit
    for name in ("block1.conv1.0.weight", "block1.conv1.0.bias", "block1.conv2.0.weight",
                 "block1.conv1.1.weight", "block1.conv1.1.running_mean",
                 "block1.conv2.1.running_var"):  # fmt: skip
        assert torch.equal(tuned[name], source[name]), name
    assert not torch.equal(tuned["block2.conv1.0.weight"], source["block2.conv1.0.weight"])
    assert tuned["classifier.weight"].shape[0] == 3
    assert start["dataset"]["input_shape"] == [3, 32, 32]  # the backbone reads 32×32


def test_a_running_run_keeps_its_version_and_its_dataset(desk):
    dataset_id, headers = desk
    body = transfer_body(dataset_id)
    body.update(epochs=50, step_delay_s=0.5)  # slow: still running while the dataset changes
    created = client.post("/api/runs", json=body).json()
    run_id, token = created["id"], {"X-Run-Token": created["owner_token"]}
    before = client.get(f"/api/datasets/{dataset_id}").json()["version"]
    try:
        add(dataset_id, headers, 2, seed=9)  # six more pictures: a new version
        after = client.get(f"/api/datasets/{dataset_id}").json()
        assert after["version"] > before and after["images"] == 36
        data = client.get(f"/api/runs/{run_id}").json()["config"]["data"]
        assert data["dataset_version"] == before
        assert len(json.loads(Path(data["manifest"]).read_text())["images"]) == 30
        refused = client.delete(f"/api/datasets/{dataset_id}", headers=headers)
        assert refused.status_code == 409
        [detail] = refused.json()["detail"]
        assert (detail["type"], detail["loc"]) == ("dataset_in_use", ["path", "dataset_id"])
        assert run_id in detail["msg"]
    finally:
        client.post(f"/api/runs/{run_id}/stop", headers=token)
    stream = events(created["events_url"])
    start = next(e for e in stream if e["kind"] == "start")
    assert start["dataset"]["train_size"] + start["dataset"]["val_size"] == 30
    again = client.post("/api/runs", json={**transfer_body(dataset_id), "epochs": 1,
                                           "max_steps_per_epoch": 1,
                                           "data": {"name": "user", "dataset": dataset_id,
                                                    "dataset_version": before}})  # fmt: skip
    assert again.status_code == 201, again.text
    assert client.get(f"/api/runs/{again.json()['id']}").json()["config"]["data"][
        "dataset_version"] == before  # fmt: skip
    listed = client.get("/api/train/datasets", params={"mine": dataset_id}).json()["user"][0]
    assert before in listed["versions"]
    gone = {**transfer_body(dataset_id), "data": {"name": "user", "dataset": dataset_id,
                                                  "dataset_version": 999}}  # fmt: skip
    answer = client.post("/api/runs", json=gone)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][-1] == "data.dataset_version"


def test_a_deleted_datasets_runs_keep_no_pictures_and_say_so(desk):
    made = client.post("/api/datasets", json={"name": "brief", "classes": list(CLASSES)}).json()
    headers = {"X-Dataset-Token": made["owner_token"]}
    listed = client.get("/api/train/datasets", params={"mine": made["id"]}).json()["user"][0]
    assert not listed["trainable"] and "at least 2 classes" in listed["reason"]
    add(made["id"], headers, 2, seed=11)
    few = client.post("/api/runs", json={**transfer_body(made["id"]), "epochs": 1})
    assert few.status_code == 422  # round(0.2 × 2) = 0 of each class held out: nothing to test
    assert few.json()["detail"][0]["loc"][-1] == "data.val_fraction"
    add(made["id"], headers, 3, seed=12)  # 5 of each class: one held out
    body = {**transfer_body(made["id"]), "epochs": 1, "max_steps_per_epoch": 1}
    run = client.post("/api/runs", json=body).json()
    assert events(run["events_url"])[-1]["reason"] == "completed"
    assert client.get(f"/api/runs/{run['id']}/heldout").status_code == 200
    assert client.delete(f"/api/datasets/{made['id']}", headers=headers).status_code == 204
    client.app.dependency_overrides[get_held_out_runs]()._cache.clear()  # as after a restart
    gone = client.get(f"/api/runs/{run['id']}/heldout")
    assert gone.status_code == 404 and "dataset was deleted" in gone.json()["detail"]
