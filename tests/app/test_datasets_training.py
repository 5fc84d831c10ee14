"""Training on a student's own dataset through `/api/runs`: the run freezes the version it
starts with (a manifest whose pictures later changes cannot touch), learns its classes, and
refuses what cannot be trained (no such dataset, a class without enough pictures)."""

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.datasets.service import Datasets, get_datasets
from app.main import app
from app.runs.manager import RunLimits
from app.settings import Settings
from cnncore.data import DataConfig, load_dataset
from cnncore.datasets.desk_objects import generate_desk_objects
from tests.app.trained_runs import run_services

client = TestClient(app)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("cnnviz-data"))


@pytest.fixture(scope="module", autouse=True)
def services(settings):
    datasets = Datasets.from_settings(settings)
    limits = RunLimits(max_concurrent=1)
    with run_services(app, settings, limits, {get_datasets: datasets}) as manager:
        yield datasets, manager
    datasets.close()


def png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def desk():
    """A dataset of generated desk objects, 8 of each of 3 classes, uploaded through the API."""
    made = client.post("/api/datasets", json={"name": "desk", "classes": ["mug", "book", "ball"]})
    dataset_id, headers = made.json()["id"], {"X-Dataset-Token": made.json()["owner_token"]}
    pictures = generate_desk_objects(8, side=48, seed=3)
    for class_id, name in enumerate(("mug", "book", "ball")):
        files = [("files", (f"{name}{i}.png", png(p), "image/png"))
                 for i, (kind, p) in enumerate(pictures) if kind == name]  # fmt: skip
        response = client.post(f"/api/datasets/{dataset_id}/images", files=files,
                               data={"class_id": str(class_id)}, headers=headers)  # fmt: skip
        assert response.status_code == 201, response.text
    return dataset_id, headers


def run_on(dataset_id, **extra):
    body = {"model": "lenet5", "data": {"name": "user", "dataset": dataset_id, "image_size": 32,
            "val_fraction": 0.25}, "epochs": 2, "batch_size": 8, **extra}  # fmt: skip
    return client.post("/api/runs", json=body)


def test_a_run_trains_on_the_version_it_started_with(desk, services):
    dataset_id, headers = desk
    created = run_on(dataset_id)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    stream = client.get(created.json()["events_url"])  # returns when the run has ended
    assert '"reason":"completed"' in stream.text.replace(" ", "")
    config = client.get(f"/api/runs/{run_id}").json()["config"]["data"]
    assert config["dataset"] == dataset_id and config["dataset_version"] == 4
    manifest = Path(config["manifest"])
    frozen = manifest.read_text()
    described = json.loads(frozen)
    assert described["classes"] == ["mug", "book", "ball"] and len(described["images"]) == 24
    start = next(
        json.loads(line[6:])
        for line in stream.text.splitlines()
        if line.startswith("data: ") and '"kind":"start"' in line.replace(" ", "")
    )
    assert start["dataset"]["class_names"] == ["mug", "book", "ball"]
    assert (start["dataset"]["train_size"], start["dataset"]["val_size"]) == (
        18,
        6,
    )  # 2 of 8 held out
    # later changes make a new version; the run's stays whole
    first = client.get(f"/api/datasets/{dataset_id}/images").json()[0]
    assert client.delete(f"/api/datasets/{dataset_id}/images/{first['digest']}",
                         headers=headers).status_code == 200  # fmt: skip
    assert manifest.read_text() == frozen
    assert (manifest.parent / f"{first['digest']}.png").is_file()
    again = load_dataset(DataConfig.from_dict({k: v for k, v in config.items() if k != "root"}))
    assert len(again.train_labels) + len(again.val_labels) == 24


def test_runs_that_cannot_train_are_refused_naming_the_field(desk):
    dataset_id, headers = desk
    for body, words in (
        ({"model": "lenet5", "data": {"name": "user"}}, "name the dataset"),
        ({"model": "lenet5", "data": {"name": "user", "dataset": "0" * 16}}, "no dataset"),
        ({"model": "lenet5", "data": {"name": "digits", "dataset": dataset_id}}, "'user'"),
    ):
        response = client.post("/api/runs", json=body)
        assert response.status_code == 422, response.text
        item = response.json()["detail"][0]
        assert item["loc"] == ["body", "data.dataset"] and words in item["msg"]
    lonely = client.post("/api/datasets", json={"classes": ["a", "b"]}).json()
    token = {"X-Dataset-Token": lonely["owner_token"]}
    for class_id, count in ((0, 3), (1, 1)):
        files = [
            ("files", (f"{i}.png", png(p), "image/png"))
            for i, (_, p) in enumerate(generate_desk_objects(count, 24, seed=class_id)[:count])
        ]
        client.post(f"/api/datasets/{lonely['id']}/images", files=files,
                    data={"class_id": str(class_id)}, headers=token)  # fmt: skip
    refused = run_on(lonely["id"])
    assert refused.status_code == 422 and "1 picture" in refused.json()["detail"][0]["msg"]
