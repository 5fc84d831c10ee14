"""/api/functions: activation curves, the vanishing-gradient experiment and losses through HTTP
equal torch; every refusal names its field; no malformed body produces a 500."""

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.lesson_answers.layers import softmax_and_cross_entropy
from app.main import app
from app.settings import Settings

client = TestClient(app)


def _fields(response) -> set:
    assert response.status_code == 422, response.text
    return {item["loc"][1] for item in response.json()["detail"] if len(item["loc"]) > 1}


def _ok(path: str, body: dict) -> dict:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- /activation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extra", "function"),
    [
        ("sigmoid", {}, torch.sigmoid),
        ("tanh", {}, torch.tanh),
        ("relu", {}, F.relu),
        ("leaky_relu", {"slope": 0.1}, lambda x: F.leaky_relu(x, 0.1)),
        ("elu", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
        ("gelu", {}, F.gelu),
        ("silu", {}, F.silu),
    ],
)
def test_activation_curve_equals_torch(name, extra, function) -> None:
    body = _ok(
        "/api/functions/activation", {"name": name, "start": -4, "stop": 3, "points": 71, **extra}
    )
    x = torch.linspace(-4, 3, 71, dtype=torch.float64, requires_grad=True)
    y = function(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(torch.tensor(body["x"], dtype=torch.float64), x.detach())
    torch.testing.assert_close(torch.tensor(body["y"], dtype=torch.float64), y.detach())
    torch.testing.assert_close(torch.tensor(body["dy"], dtype=torch.float64), dy)
    assert body["name"] == name
    assert body["slope"] == extra.get("slope") and body["alpha"] == extra.get("alpha")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "softplus"}, "name"),
        ({"points": 2002}, "points"),
        ({"points": 1}, "points"),
        ({"start": -101.0}, "start"),
        ({"stop": 1e9}, "stop"),
        ({"start": 2.0, "stop": 1.0}, "stop"),
        ({"name": "leaky_relu", "slope": -0.5}, "slope"),
        ({"name": "elu", "alpha": 11}, "alpha"),
        ({"start": "left"}, "start"),
    ],
)
def test_activation_refusals_name_their_field(body: dict, field: str) -> None:
    assert field in _fields(client.post("/api/functions/activation", json=body))


# --- /vanishing -------------------------------------------------------------------------------


def test_vanishing_answers_per_layer_and_shows_the_collapse() -> None:
    sigmoid = _ok("/api/functions/vanishing", {"activation": "sigmoid", "depth": 20, "seed": 1})
    relu = _ok("/api/functions/vanishing", {"activation": "relu", "depth": 20, "seed": 1})
    assert [layer["name"] for layer in sigmoid["layers"]][:2] == [
        "blocks.0.linear",
        "blocks.1.linear",
    ]
    assert len(sigmoid["layers"]) == 21 and sigmoid["layers"][-1]["name"] == "classifier"

    def first_over_last(body):
        return body["layers"][0]["grad_norm"] / body["layers"][-1]["grad_norm"]

    assert first_over_last(sigmoid) < 1e-6 < 0.1 < first_over_last(relu)
    assert sigmoid["init"] == "kaiming" and sigmoid["batch_norm"] is False
    normed = _ok(
        "/api/functions/vanishing",
        {"activation": "sigmoid", "depth": 20, "batch_norm": True, "seed": 1},
    )
    assert first_over_last(normed) > 0.1
    assert all(math.isfinite(layer["weight_norm"]) for layer in normed["layers"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"depth": 51}, "depth"),
        ({"depth": 0}, "depth"),
        ({"width": 129}, "width"),
        ({"activation": "softmax"}, "activation"),
        ({"init": "orthogonal"}, "init"),
        ({"seed": -1}, "seed"),
        ({"batch_norm": "yes please"}, "batch_norm"),
    ],
)
def test_vanishing_refusals_name_their_field(body: dict, field: str) -> None:
    assert field in _fields(client.post("/api/functions/vanishing", json=body))


def test_vanishing_limits_come_from_settings() -> None:
    app.dependency_overrides[settings_dep] = lambda: Settings(max_vanishing_depth=3)
    try:
        assert "depth" in _fields(client.post("/api/functions/vanishing", json={"depth": 4}))
        assert client.post("/api/functions/vanishing", json={"depth": 3}).status_code == 200
    finally:
        app.dependency_overrides.pop(settings_dep, None)


# --- /loss ------------------------------------------------------------------------------------


def test_cross_entropy_through_the_api_equals_torch() -> None:
    logits = [1.5, -0.3, 0.2, 2.4]
    body = _ok(
        "/api/functions/loss", {"logits": logits, "target": 2, "log_base": 2, "temperature": 1.7}
    )
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(z[None] / 1.7, torch.tensor([2])) / math.log(2)
    (grad,) = torch.autograd.grad(expected, z)
    assert body["loss"] == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(torch.tensor(body["grad"], dtype=torch.float64), grad)
    p = torch.softmax(z.detach() / 1.7, 0)
    torch.testing.assert_close(torch.tensor(body["probs"], dtype=torch.float64), p)
    assert body["target"] == [0.0, 0.0, 1.0, 0.0]
    assert body["terms"][2] == pytest.approx(-math.log2(p[2].item()))
    assert [body["terms"][i] for i in (0, 1, 3)] == [0.0, 0.0, 0.0]
    assert body["comparison"] is None and body["log_base"] == "2"


def test_soft_target_and_probabilities_in() -> None:
    body = _ok("/api/functions/loss", {"probs": [0.7, 0.2, 0.1], "target": [0.5, 0.5, 0.0]})
    expected = -(0.5 * math.log(0.7) + 0.5 * math.log(0.2))
    assert body["loss"] == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(
        torch.tensor(body["grad"]), torch.tensor([0.7 - 0.5, 0.2 - 0.5, 0.1]), rtol=1e-6, atol=1e-9
    )


def test_binary_cross_entropy_through_the_api() -> None:
    body = _ok(
        "/api/functions/loss", {"logits": [0.8], "target": 0, "kind": "binary_cross_entropy"}
    )
    expected = F.binary_cross_entropy_with_logits(
        torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    )
    assert body["loss"] == pytest.approx(expected.item(), rel=1e-12)
    p = torch.sigmoid(torch.tensor(0.8, dtype=torch.float64)).item()
    assert body["probs"] == pytest.approx([1 - p, p]) and body["grad"] == pytest.approx([p])


def test_focal_through_the_api_with_its_comparison() -> None:
    body = _ok(
        "/api/functions/loss",
        {"logits": [2.0, 0.5, -1.0], "target": 0, "kind": "focal", "gamma": 2, "alpha": 0.25},
    )
    p_t = torch.softmax(torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64), 0)[0].item()
    expected = -0.25 * (1 - p_t) ** 2 * math.log(p_t)
    assert body["loss"] == pytest.approx(expected, rel=1e-12)
    examples = {e["example"]: e for e in body["comparison"]}
    assert set(examples) == {"current", "easy", "hard"}
    assert examples["easy"]["ratio"] == pytest.approx(400.0)  # 1 / (0.25 · 0.1²)
    assert examples["current"]["p_t"] == pytest.approx(p_t)
    assert body["gamma"] == 2.0 and body["alpha"] == 0.25


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"logits": []}, "logits"),
        ({"logits": [1.0]}, "logits"),
        ({}, "logits"),
        ({"logits": [0.0] * 101}, "logits"),
        ({"logits": [1.0, "x"]}, "logits"),
        ({"probs": [0.5, 0.6]}, "probs"),
        ({"probs": [0.5, -0.5, 1.0]}, "probs"),
        ({"logits": [1.0, 2.0], "target": 2}, "target"),
        ({"logits": [1.0, 2.0], "target": -1}, "target"),
        ({"logits": [1.0, 2.0], "target": [0.3, 0.3]}, "target"),
        ({"logits": [1.0, 2.0], "target": "cat"}, "target"),
        ({"logits": [1.0, 2.0], "kind": "hinge"}, "kind"),
        ({"logits": [1.0, 2.0], "log_base": 3}, "log_base"),
        ({"logits": [1.0, 2.0], "temperature": 0}, "temperature"),
        ({"logits": [1.0, 2.0], "kind": "focal", "gamma": -1}, "gamma"),
        ({"logits": [1.0, 2.0], "kind": "focal", "alpha": 2}, "alpha"),
        ({"logits": [1.0, 2.0], "kind": "binary_cross_entropy"}, "logits"),
        ({"logits": [1.0], "kind": "binary_cross_entropy", "target": 1.5}, "target"),
    ],
)
def test_loss_refusals_name_their_field(body: dict, field: str) -> None:
    assert field in _fields(client.post("/api/functions/loss", json=body))


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/functions/loss", f)
        for f in ("logits", "probs", "target", "temperature", "gamma", "alpha")
    ]
    + [("/api/functions/activation", f) for f in ("start", "stop", "slope", "alpha", "points")]
    + [("/api/functions/vanishing", f) for f in ("depth", "width", "slope")],
)
def test_a_non_finite_number_in_any_field_is_named(path: str, field: str) -> None:
    base = {"logits": [1.0, 2.0]} if path.endswith("loss") else {}
    raw = json.dumps({**base, field: 0}).replace(f'"{field}": 0', f'"{field}": NaN')
    answer = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert field in _fields(answer)


@pytest.mark.parametrize(
    "path", ["/api/functions/activation", "/api/functions/vanishing", "/api/functions/loss"]
)
@pytest.mark.parametrize(
    "raw", ["", "not json", "[]", "null", "42", '{"logits": ', "[" * 5000 + "]" * 5000]
)
def test_garbage_bodies_get_a_4xx(path: str, raw: str) -> None:
    answer = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422), (path, raw, answer.text)


# --- softmax written out (the lesson's lines) --------------------------------------------------


def _numbers(text: str) -> list[float]:
    """The numbers of a worked line, in order ("−" is the minus sign num() writes)."""
    return [float(n.replace("−", "-")) for n in re.findall(r"−?\d+(?:\.\d+)?", text)]


def test_softmax_is_written_out_as_the_lesson_writes_it() -> None:
    logits = [2.0, -1.0, 0.1]
    answer = _ok("/api/functions/loss", {"kind": "cross_entropy", "logits": logits, "target": 0})
    lesson = softmax_and_cross_entropy(logits, 0)[0].work
    assert answer["softmax_worked"] == list(lesson)


@pytest.mark.parametrize("kind", ["cross_entropy", "focal"])
def test_softmax_lines_hold_torchs_numbers_at_a_temperature(kind: str) -> None:
    logits, temperature = [1.5, -0.4, 0.3, 2.2], 2.0
    body = {"kind": kind, "logits": logits, "target": 1, "temperature": temperature}
    exps_line, sum_line, probs_line = _ok("/api/functions/loss", body)["softmax_worked"]
    scaled = torch.tensor(logits, dtype=torch.float64) / temperature
    # e^(z_i/T) = value, for each class
    pairs = _numbers(exps_line)
    assert pairs[0::2] == pytest.approx(scaled.tolist(), rel=1e-3)
    assert pairs[1::2] == pytest.approx(scaled.exp().tolist(), rel=1e-3)
    assert _numbers(sum_line) == pytest.approx([scaled.exp().sum().item()], rel=1e-3)
    # p_i = e / Σ = p: the index, the quotient's two numbers, then softmax to 3 digits
    probs = _numbers(probs_line)[3::4]
    assert probs == pytest.approx(torch.softmax(scaled, 0).tolist(), abs=5.01e-4)  # 3 digits


@pytest.mark.parametrize("logits", [[0.0, 710.0], [-900.0, -905.0, -950.0], [1e6, 999_990.0]])
def test_softmax_of_logits_far_from_zero_is_written_shifted_by_their_maximum(logits) -> None:
    """e^710 overflows a float and e^-900 rounds to 0: the lines subtract the largest logit m
    (softmax does not change) and still hold torch's numbers."""
    body = {"kind": "cross_entropy", "logits": logits, "target": 0}
    answer = _ok("/api/functions/loss", body)
    exps_line, sum_line, probs_line = answer["softmax_worked"]
    top = max(logits)
    shifted = torch.tensor(logits, dtype=torch.float64) - top
    triples = _written(exps_line)  # e^(z − m) = value, for each class
    assert triples[0::3] == pytest.approx(logits) and set(triples[1::3]) == {top}
    assert triples[2::3] == pytest.approx(shifted.exp().tolist(), rel=1e-3, abs=1e-12)
    assert _written(sum_line) == pytest.approx([shifted.exp().sum().item()], rel=1e-3)
    probs = _written(probs_line)[3::4]
    assert probs == pytest.approx(torch.softmax(shifted, 0).tolist(), abs=5.01e-4)


def _written(text: str) -> list[float]:
    """Numbers as num() writes them: thousands commas, "−", and 4.476×10⁻³⁰⁹."""
    plain = text.replace(",", "").replace("−", "-").replace("×10", "e")
    plain = plain.translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789"))
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", plain)]


def test_binary_loss_has_no_softmax_lines() -> None:
    body = {"kind": "binary_cross_entropy", "logits": [0.3], "target": 1}
    assert _ok("/api/functions/loss", body)["softmax_worked"] is None
