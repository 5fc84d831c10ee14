"""POST /api/gradcheck: the answer is `cnncore.gradcheck`'s own, backpropagation agrees with
central differences on both small networks, and bad settings are 422 naming their field."""


import pytest
from fastapi.testclient import TestClient

from app.main import app
from cnncore.gradcheck import check_small_network

client = TestClient(app)


@pytest.mark.parametrize(
    ("model", "activation", "seed", "samples"),
    [("tiny_cnn", "tanh", 0, 20), ("tiny_mlp", "sigmoid", 3, 200), ("tiny_cnn", "gelu", 7, 5)],
)
def test_values_are_the_cores(model, activation, seed, samples):
    body = {"model": model, "activation": activation, "seed": seed, "samples": samples}
    response = client.post("/api/gradcheck", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    core = check_small_network(
        activation, eps=1e-6, max_coordinates=samples, seed=seed, network=model
    )
    assert answer["formula"] == "(f(θ+ε) − f(θ−ε)) / 2ε" and answer["epsilon"] == 1e-6
    assert answer["threshold"] == core.tolerance and answer["loss"] == core.loss
    assert [t["name"] for t in answer["tensors"]] == [t.name for t in core.tensors]
    for out, check in zip(answer["tensors"], core.tensors, strict=True):
        assert out["shape"] == check.shape and out["checked"] == check.checked
        assert out["relative_error"] == check.relative_error
        assert out["max_abs_difference"] == check.max_abs_difference
        # a correct backward pass: autograd agrees with the differences to ~1e-9
        assert out["relative_error"] < 1e-6 and out["passed"]
    assert answer["passed"] and answer["max_relative_error"] < 1e-6


def test_the_two_networks_have_their_own_layers():
    cnn = client.post("/api/gradcheck", json={"model": "tiny_cnn"}).json()
    mlp = client.post("/api/gradcheck", json={"model": "tiny_mlp", "samples": 200}).json()
    assert [(t["name"], t["shape"]) for t in cnn["tensors"]] == [
        ("0.weight", [2, 1, 3, 3]), ("0.bias", [2]), ("4.weight", [3, 18]), ("4.bias", [3]),
    ]  # fmt: skip
    assert [(t["name"], t["shape"]) for t in mlp["tensors"]] == [
        ("1.weight", [8, 36]), ("1.bias", [8]), ("3.weight", [3, 8]), ("3.bias", [3]),
    ]  # fmt: skip
    assert mlp["tensors"][0]["checked"] == 200 and mlp["tensors"][0]["total"] == 288


def test_a_large_epsilon_is_visibly_less_accurate():
    # the central difference is exact up to O(ε²): at ε = 0.01 a smooth net's error shows
    small = client.post("/api/gradcheck", json={"epsilon": 1e-6}).json()
    large = client.post("/api/gradcheck", json={"epsilon": 1e-2}).json()
    assert large["max_relative_error"] > 100 * small["max_relative_error"]


def test_the_largest_check_is_answered_in_full():
    """The most samples a check may take (its time is a benchmark's business, not a test's)."""
    response = client.post("/api/gradcheck", json={"model": "tiny_mlp", "samples": 200})
    assert response.status_code == 200
    body = response.json()
    assert body["passed"]
    assert all(t["checked"] == min(200, t["total"]) for t in body["tensors"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"epsilon": 0.5}, "epsilon"),
        ({"epsilon": 1e-9}, "epsilon"),
        ({"epsilon": "nan"}, "epsilon"),
        ({"samples": 201}, "samples"),
        ({"samples": 0}, "samples"),
        ({"model": "vgg16"}, "model"),
        ({"activation": "softsign"}, "activation"),
        ({"seed": -1}, "seed"),
        ({"buggy": True}, "buggy"),
    ],
)
def test_bad_settings_are_422_naming_the_field(body, field):
    response = client.post("/api/gradcheck", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]
