"""POST /api/predict: the picture as the body, every class's probability back — equal to the
core's softmax (and torch's) for bundled weights and for a training run's newest checkpoint;
bad pictures, types, sizes, models and runs refused naming the field; the live group's own
per-client slots and quota."""

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from uploads import own_feature_cache

from app.limits import live_work
from app.main import app
from app.quotas import reset_quotas
from app.settings import get_settings
from app.weights_choice import checkpoints
from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataConfig, load_dataset
from cnncore.features import prepare_input
from cnncore.images import decode_image
from cnncore.training import TrainConfig, Trainer
from cnncore.weights import load_model

client = TestClient(app)
RUN = "0123456789ab"


@pytest.fixture(autouse=True)
def fresh():
    reset_quotas()
    with own_feature_cache(app) as cache:
        yield cache
    reset_quotas()


def png(seed: int = 0, side: int = 64) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def predict(data: bytes, kind: str = "image/png", **query):
    return client.post("/api/predict", params=query, content=data, headers={"Content-Type": kind})


def torch_probs(loaded, data: bytes) -> np.ndarray:
    image = decode_image(data, max_bytes=10**7, max_pixels=10**8)
    with torch.no_grad():
        logits = loaded.model(prepare_input(loaded.weights, image).tensor)
    return torch.softmax(logits[0].double(), 0).numpy()


@pytest.mark.parametrize("model", ["lenet5", "tinyvgg"])
def test_bundled_weights_give_torch_softmax_over_every_class(model):
    data = png(3)
    response = predict(data, model=model)
    assert response.status_code == 200, response.text
    body = response.json()
    loaded = load_model(model)
    assert body["model"] == model and body["run"] is None
    assert body["labels"] == list(loaded.weights.labels)
    assert body["input_shape"] == list(loaded.weights.input_shape)
    assert np.allclose(body["probs"], torch_probs(loaded, data), atol=1e-6)
    assert sum(body["probs"]) == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    """A LeNet-5 checkpoint from a short training on digits (as the run manager saves one)."""
    data = load_dataset(DataConfig(name="digits", limit=120, seed=0))
    trainer = Trainer(TrainConfig(model="lenet5", epochs=1, batch_size=32, max_steps_per_epoch=2),
                      data=data)  # fmt: skip
    trainer.run()
    return save_checkpoint(trainer, tmp_path_factory.mktemp("run") / "final.safetensors")


@pytest.fixture
def with_run(run_file):
    def checkpoint_of(run_id):
        if run_id != RUN:
            raise LookupError(f"no training run has the id {run_id!r}")
        return run_file

    app.dependency_overrides[checkpoints] = lambda: checkpoint_of
    yield run_file
    app.dependency_overrides.pop(checkpoints, None)


def test_a_run_answers_with_its_checkpoint(with_run):
    data = png(5, side=40)
    body = predict(data, model="lenet5", run=RUN).json()
    trained = load_checkpoint(with_run).loaded_model()
    assert body["run"] == RUN and body["labels"] == list(trained.weights.labels)
    assert np.allclose(body["probs"], torch_probs(trained, data), atol=1e-6)
    bundled = predict(data, model="lenet5").json()["probs"]
    assert not np.allclose(bundled, body["probs"])  # not the bundled weights


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"model": "lenet5", "run": "fedcba987654"}, "run"),  # no such run
        ({"model": "tinyvgg", "run": RUN}, "run"),  # the run trained lenet5
        ({"model": "lenet5", "run": "../../etc/passwd"}, "run"),  # never reaches a path
        ({"model": "no_such_model"}, "model"),
        ({"model": "resnet18"}, "model"),  # initialised weights name no classes
        ({}, "model"),
    ],
)
def test_bad_models_and_runs_are_refused_naming_the_query_field(with_run, query, field):
    response = predict(png(), **query)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_bad_pictures_are_refused_naming_image():
    for data, kind, status in [
        (b"not a picture", "image/png", 422),
        (png()[:60], "image/png", 422),  # truncated
        (png(), "text/plain", 415),
        (b"", "image/png", 422),
    ]:
        response = predict(data, kind, model="lenet5")
        assert response.status_code == status, (kind, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "image"]


def test_a_picture_over_the_live_limit_is_refused_before_it_is_read():
    limit = get_settings().live_max_picture_bytes
    response = predict(b"\0" * (limit + 1), model="lenet5")
    assert response.status_code == 413
    item = response.json()["detail"][0]
    assert item["loc"] == ["body", "image"] and item["ctx"] == {"limit": limit}


def test_live_predictions_have_their_own_slots_and_quota(monkeypatch):
    settings = get_settings()
    limiter = live_work()
    limiter.active["testclient"] = settings.client_live_requests
    try:
        busy = predict(png(), model="lenet5")
    finally:
        del limiter.active["testclient"]
    assert busy.status_code == 429 and "live" in busy.json()["detail"][0]["msg"]
    reset_quotas()
    monkeypatch.setattr(settings, "client_live_per_minute", 3)
    monkeypatch.setattr(settings, "client_heavy_per_minute", 1)
    answers = [predict(png(), model="lenet5").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]  # the live quota, not the heavy one (1)


def test_live_predictions_run_on_their_own_threads_with_one_torch_thread():
    from app.live_pool import live_pool

    pool = live_pool()
    assert pool._max_workers == get_settings().live_workers
    assert pool.submit(torch.get_num_threads).result(timeout=30) == 1


def test_a_live_prediction_never_waits_for_a_big_model_being_built(fresh, monkeypatch):
    """While VGG-16 is being built for /api/features (its weights loading), a prediction
    through LeNet-5, not built yet either, is built and answered: one build lock per model."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import app.feature_cache as feature_cache

    entered, release = threading.Event(), threading.Event()
    load = feature_cache.load_pretrained

    def slow_vgg(name, *args, **kwargs):
        if name == "vgg16":
            entered.set()
            release.wait()
            raise RuntimeError("not built in this test")
        return load(name, *args, **kwargs)

    monkeypatch.setattr(feature_cache, "load_pretrained", slow_vgg)
    with ThreadPoolExecutor(2) as pool:
        building = pool.submit(fresh.model, "vgg16")
        assert entered.wait(60)
        try:
            asked = pool.submit(predict, png(3), model="lenet5")
            answer = asked.result(timeout=120)  # a deadlock guard: before, it waited for VGG
        finally:
            release.set()
        with pytest.raises(RuntimeError):
            building.result(timeout=60)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["probs"]) == 10
