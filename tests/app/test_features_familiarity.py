"""/api/features `familiarity`: the flower is unlike TinyVGG's shapes, a held-out shape is not."""

import pytest
from fastapi.testclient import TestClient
from uploads import own_feature_cache

from app.main import app
from cnncore.familiarity import familiarity
from cnncore.familiarity_sets import held_out
from cnncore.images import encode_png, sample_image
from cnncore.weights import load_model

client = TestClient(app)


@pytest.fixture(autouse=True)
def fresh_cache():
    with own_feature_cache(app) as cache:
        yield cache


def post(files=None, **fields):
    response = client.post("/api/features", data=fields, files=files)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("model", ["tinyvgg", "lenet5", "mlp"])
def test_the_flower_is_unlike_what_each_small_classifier_learned(model):
    body = post(model=model, sample="flower")
    expected = familiarity(load_model(model), sample_image("flower"))
    assert body["familiarity"] == {
        "score": pytest.approx(expected.score, rel=1e-9),
        "threshold": expected.threshold,
        "unlike": True,
        "method": "mahalanobis",
    }
    assert body["familiarity"]["score"] > body["familiarity"]["threshold"]
    again = post(model=model, sample="flower")  # the cached maps still come with it
    assert again["cached"] is True and again["familiarity"] == body["familiarity"]


def test_an_uploaded_held_out_shape_is_familiar_to_tinyvgg():
    loaded = load_model("tinyvgg")
    shape = held_out(loaded.weights.trained).evaluation[0]
    png = encode_png(shape.rgb)
    body = post(files={"image": ("shape.png", png, "image/png")}, model="tinyvgg")
    assert body["familiarity"]["unlike"] is False
    assert body["familiarity"]["score"] == pytest.approx(familiarity(loaded, shape).score)


def test_the_mnist_digit_is_familiar_to_lenet5():
    assert post(model="lenet5", sample="digit")["familiarity"]["unlike"] is False


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "tinyvgg", "sample": "flower", "mode": "handcrafted"},
        {"model": "alexnet", "sample": "flower"},
        {"model": "autoencoder", "sample": "digit"},
    ],
)
def test_no_familiarity_without_statistics(fields):
    assert post(**fields)["familiarity"] is None
