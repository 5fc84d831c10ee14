"""A run is refused before it starts when it cannot fit the machine or the server's limits
(`app.runs.budget`): the counts are those of the real split and the real trainer, fields left
out count, and each refusal names its field and carries the estimate (translatable)."""

import pytest
import refusals
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.main import app
from app.runs import budget
from app.runs.budget import DATASET_IMAGES, run_size
from app.runs.manager import RunLimits, RunManager, get_run_manager
from app.runs.spec import plan_run
from app.runs.store import SQLiteRunStore
from app.schemas.runs import RunCreate
from app.settings import Settings
from cnncore.data import DataConfig, load_dataset, load_images
from cnncore.errors import CNNCoreError
from cnncore.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The API with a run manager of its own (never the developer's var/)."""
    folder = tmp_path_factory.mktemp("budget")
    store = SQLiteRunStore(folder / "cnnviz.sqlite3")
    manager = RunManager(store, folder / "checkpoints", RunLimits(max_concurrent=1))
    app.dependency_overrides[get_run_manager] = lambda: manager
    yield TestClient(app)
    app.dependency_overrides.pop(get_run_manager, None)
    manager.close()
    store.close()


def refused(settings: Settings | None = None, **values) -> CNNCoreError:
    with pytest.raises(CNNCoreError) as caught:
        plan_run(RunCreate(**values), settings or Settings(), lambda run_id: None)
    return caught.value


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_the_image_counts_are_those_of_the_loaded_datasets(name):
    assert len(load_images(DataConfig(name=name))[1]) == DATASET_IMAGES[name]


@pytest.mark.parametrize("data", [
    {"name": "digits"},
    {"name": "digits", "classes": [1, 4, 7], "val_fraction": 0.3},
    {"name": "digits", "limit": 333},
    {"name": "digits", "train_per_class": 5},
    {"name": "shapes", "shapes_count": 120, "image_size": 20},
])  # fmt: skip
def test_the_size_is_that_of_the_real_split_and_trainer(data):
    config = TrainConfig(model="mlp", data=DataConfig(**data), batch_size=16, epochs=1,
                         log_every=3)  # fmt: skip
    split = load_dataset(config.data)
    loaded = 120 if data["name"] == "shapes" else DATASET_IMAGES[data["name"]]
    size = run_size(config, loaded, 10 if data["name"] == "digits" else 6)
    # Stratified rounding moves at most one image per class between the two parts.
    classes = split.num_classes
    assert abs(size.train_images - len(split.train_labels)) <= classes
    assert abs(size.val_images - len(split.val_labels)) <= classes
    trainer = Trainer(config, data=split)
    assert abs(size.steps_per_epoch - trainer.steps_per_epoch) <= 1
    events = list(trainer.run())
    assert abs(size.events - len(events)) <= 6  # plus checkpoints and status words


def test_resnet18_at_256_pixels_and_batch_1024_is_refused_with_its_estimate(client):
    body = {"model": "resnet18", "batch_size": 1024, "epochs": 1,
            "data": {"name": "digits", "image_size": 256}}  # fmt: skip
    item = refusals.refusal(client.post("/api/runs", json=body))
    assert item["loc"] == ["body", "batch_size"] and item["type"] == "run_too_big"
    assert item["ctx"]["peak_gb"] > 25 and item["ctx"]["step_gb"] > 25
    assert item["ctx"]["limit_gb"] <= Settings().max_run_memory_bytes / 1e9
    assert "GB" in item["msg"]
    # The same run at a batch of 16 fits.
    plan_run(RunCreate(**{**body, "batch_size": 16}), Settings(), lambda run_id: None)


def test_the_machine_free_memory_limits_a_run(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda device: 100_000_000)
    small = refused(Settings(max_run_memory_bytes=0), model="tinyvgg", batch_size=512,
                    data={"name": "shapes", "image_size": 64})  # fmt: skip
    assert small.field == "batch_size" and small.code == "run_too_big"
    assert small.ctx["limit_gb"] == 0.08  # 80 % of what is free
    images = refused(Settings(max_run_memory_bytes=0), model="mlp", batch_size=8,
                     data={"name": "mnist5k", "image_size": 256})  # fmt: skip
    assert images.field == "data.image_size" and images.ctx["data_gb"] > 2


def test_steps_per_epoch_count_when_the_field_is_left_out():
    settings = Settings(max_run_steps_per_epoch=1000)
    error = refused(settings, model="mlp", batch_size=1, data={"name": "mnist5k"})
    assert error.field == "max_steps_per_epoch" and error.code == "run_too_many_steps"
    assert error.ctx == {"steps": 4000, "images": 4000, "batch": 1, "limit": 1000}
    plan_run(RunCreate(model="mlp", batch_size=1, data={"name": "mnist5k"},
                       max_steps_per_epoch=1000), settings, lambda run_id: None)  # fmt: skip


def test_events_count_with_the_default_log_every():
    error = refused(Settings(max_run_events=300), model="mlp", batch_size=8, epochs=2,
                    data={"name": "digits"})  # fmt: skip
    assert error.field == "log_every" and error.code == "run_too_many_events"
    steps = -(-round(1797 * 0.8) // 8)  # ceil(1438 / 8) = 180 per epoch
    assert error.ctx == {"events": 2 * (steps + 2) + 4, "limit": 300}


def test_the_work_of_a_run_is_limited():
    error = refused(Settings(max_run_gmacs=10), model="resnet18", epochs=5,
                    data={"name": "shapes", "image_size": 32})  # fmt: skip
    assert error.field == "epochs" and error.code == "run_too_long"
    assert error.ctx["gmacs"] > 10 and error.ctx["limit_gmacs"] == 10


def test_every_budget_refusal_reaches_the_page_translated(client):
    settings = Settings(max_run_events=100, max_run_steps_per_epoch=50, max_run_gmacs=1)
    app.dependency_overrides[settings_dep] = lambda: settings
    try:
        for body, kind in [
            ({"model": "mlp", "batch_size": 1, "data": {"name": "digits"}}, "run_too_many_steps"),
            ({"model": "mlp", "batch_size": 32, "data": {"name": "digits"}},
             "run_too_many_events"),
            ({"model": "tinyvgg", "batch_size": 64, "max_steps_per_epoch": 5, "epochs": 2,
              "log_every": 5, "data": {"name": "shapes", "image_size": 64}}, "run_too_long"),
        ]:  # fmt: skip
            item = refusals.refusal(client.post("/api/runs", json=body))
            assert item["type"] == kind
    finally:
        app.dependency_overrides.pop(settings_dep, None)


@pytest.mark.parametrize(("side", "accepted"), [(12, False), (19, False), (20, True)])
def test_shapes_sizes_are_refused_at_plan_time_exactly_when_they_cannot_be_drawn(side, accepted):
    values = {"model": "mlp", "data": {"name": "shapes", "image_size": side, "shapes_count": 30}}
    if accepted:
        plan_run(RunCreate(**values), Settings(), lambda run_id: None)
        assert load_dataset(DataConfig(name="shapes", image_size=side, shapes_count=30))
    else:
        error = refused(**values)
        assert error.field == "data.image_size" and "20 to 128" in str(error)
