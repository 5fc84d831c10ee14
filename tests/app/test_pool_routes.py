"""/api/pool/trace: traces through HTTP equal torch's pooling and autograd; every refusal names
its field; no input, however malformed, produces a 500."""

import json

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.deps import settings_dep
from app.main import app
from app.schemas.pool import PoolTraceResponse
from app.settings import Settings

client = TestClient(app)
THROUGH_HTTP = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
URL = "/api/pool/trace"


def _tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _fields(response) -> set:
    assert response.status_code == 422, response.text
    return {item["loc"][1] for item in response.json()["detail"] if len(item["loc"]) > 1}


def _post(body: dict) -> dict:
    answer = client.post(URL, json=body)
    assert answer.status_code == 200, answer.text
    return PoolTraceResponse.model_validate(answer.json()).model_dump()


def _torch_pool(x, kind, kernel, stride, padding, ceil_mode, count_include_pad):
    if kind == "max":
        return F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode)
    if kind == "avg":
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad)
    if kind == "global_avg":
        return F.adaptive_avg_pool2d(x, 1)
    # L2: zero padding, then √(Σ x²) per window (lp_pool2d without its ceil-mode rescaling)
    sums = F.avg_pool2d(x.square(), kernel, stride, padding, ceil_mode=ceil_mode,
                        divisor_override=1)
    return sums.sqrt()


@st.composite
def configs(draw):
    kernel = draw(st.integers(1, 3))
    size = draw(st.integers(kernel, 7))
    return {
        "kind": draw(st.sampled_from(["max", "avg", "l2", "global_avg"])),
        "channels": draw(st.integers(1, 3)),
        "height": size,
        "width": draw(st.integers(kernel, 7)),
        "kernel_size": kernel,
        "stride": draw(st.integers(1, 3)),
        "padding": draw(st.integers(0, kernel // 2)),
        "ceil_mode": draw(st.booleans()),
        "count_include_pad": draw(st.booleans()),
        "seed": draw(st.integers(0, 1000)),
    }


@THROUGH_HTTP
@given(configs())
def test_trace_and_routing_through_the_api_equal_torch(config: dict) -> None:
    generator = torch.Generator().manual_seed(config["seed"])
    x = torch.randn(config["channels"], config["height"], config["width"], generator=generator,
                    dtype=torch.float64)
    options = {k: config[k] for k in ("kernel_size", "stride", "padding", "ceil_mode",
                                      "count_include_pad")}
    leaf = x.clone().requires_grad_(True)
    expected = _torch_pool(leaf[None], config["kind"], config["kernel_size"], config["stride"],
                           config["padding"], config["ceil_mode"], config["count_include_pad"])[0]
    grad_output = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
    (expected_grad,) = torch.autograd.grad(expected, leaf, grad_output)

    body = _post({"input": x.tolist(), "kind": config["kind"], **options,
                  "grad_output": grad_output.tolist()})
    torch.testing.assert_close(_tensor(body["output"]), expected.detach())
    torch.testing.assert_close(_tensor(body["backward"]["grad_input"]), expected_grad)
    channels, height, width = expected.shape
    assert body["shape"] | {"formula": None} == {
        "channels": channels, "height": height, "width": width, "formula": None
    }
    assert [(s["channel"], s["y"], s["x"]) for s in body["steps"]] == [
        (c, i, j) for c in range(channels) for i in range(height) for j in range(width)
    ]
    for step, route in zip(body["steps"], body["backward"]["routes"], strict=True):
        assert (step["channel"], step["y"], step["x"]) == (route["channel"], route["y"],
                                                           route["x"])
        assert step["value"] == pytest.approx(expected[step["channel"], step["y"], step["x"]]
                                              .item(), rel=1e-12, abs=1e-12)
        assert (step["chosen"] is not None) == (config["kind"] == "max")
        assert (step["weights"] is not None) == (config["kind"] != "max")


def test_max_steps_and_routes_written_out_by_hand() -> None:
    body = _post({
        "input": [[[1, 5, 2], [0, 3, 4], [7, 1, 1]]],
        "kind": "max", "kernel_size": 2, "stride": 2, "padding": 1,
        "grad_output": [[[1, 2], [3, 4]]],
    })
    assert body["output"] == [[[1.0, 5.0], [7.0, 4.0]]]
    first = body["steps"][0]
    assert first["rows"] == [-1, 0] and first["cols"] == [-1, 0]
    assert first["padded"] == [[True, True], [True, False]]
    assert first["values"] == [[None, None], [None, 1.0]]  # max pads with −∞, shown as null
    assert first["chosen"] == (0, 0) and first["value"] == 1.0
    last = body["steps"][-1]
    assert last["rows"] == [1, 2] and last["cols"] == [1, 2] and last["chosen"] == (1, 2)
    assert body["backward"]["grad_input"] == [[[1.0, 2.0, 0.0], [0.0, 0.0, 4.0], [3.0, 0.0, 0.0]]]
    assert body["backward"]["routes"][3]["amounts"] == [[0.0, 4.0], [0.0, 0.0]]
    assert body["shape"]["formula"]["height"] == "H_out = ⌊(3 + 2·1 − 2) / 2⌋ + 1 = 2"
    assert body["padding"] == {"top": 1, "bottom": 1, "left": 1, "right": 1}
    assert body["stride"] == (2, 2) and body["kernel_size"] == (2, 2)


def test_avg_steps_carry_the_divisor_and_weights() -> None:
    body = _post({"input": [[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], "kind": "avg",
                  "kernel_size": 2, "stride": 2, "ceil_mode": True})
    # torch divides the overhanging windows by the cells they cover: 2, 2 and 1
    assert [s["divisor"] for s in body["steps"]] == [4.0, 2.0, 2.0, 1.0]
    assert body["output"] == [[[3.0, 4.5], [7.5, 9.0]]]
    assert body["steps"][1]["weights"] == [[0.5, 0.0], [0.5, 0.0]]
    assert body["backward"] is None


def test_a_large_trace_fits_the_budget() -> None:
    x = torch.randn(8, 64, 64, dtype=torch.float64)
    body = client.post(URL, json={"input": x.tolist(), "kind": "max", "kernel_size": 2,
                                  "grad_output": torch.ones(8, 32, 32).tolist()}).json()
    assert len(body["steps"]) == 8 * 32 * 32
    torch.testing.assert_close(_tensor(body["output"]), F.max_pool2d(x[None], 2)[0])


GOOD = {"input": [[[0.0, 1.0], [2.0, 3.0]]], "kind": "max", "kernel_size": 2}


def _with(**changes) -> dict:
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(kind="median"), "kind"),
        (_with(input=[]), "input"),
        (_with(input=[[[1.0, 2.0], [3.0]]]), "input"),
        (_with(input=[[1.0, 2.0]]), "input"),
        (_with(input=[[["a", "b"]]]), "input"),
        (_with(input=[[[0.0] * 65]]), "input"),
        (_with(input=[[[0.0]]] * 17), "input"),
        (_with(kernel_size=3), "kernel_size"),
        (_with(kernel_size=0), "kernel_size"),
        (_with(kernel_size=12, input=[[[0.0] * 12] * 12]), "kernel_size"),
        (_with(stride=0), "stride"),
        (_with(padding=2), "padding"),
        (_with(padding=-1), "padding"),
        (_with(padding="same"), "padding"),
        (_with(ceil_mode="sometimes"), "ceil_mode"),
        (_with(grad_output=[[[1.0, 2.0]]]), "grad_output"),
        (_with(grad_output=[[[1.0], [2.0, 3.0]]]), "grad_output"),
        ({"kind": "max"}, "input"),
    ],
)
def test_refusals_name_their_field(body: dict, field: str) -> None:
    assert field in _fields(client.post(URL, json=body))


def test_the_window_cell_budget_comes_from_settings() -> None:
    try:  # GOOD writes out one 2×2 window: 4 cells
        app.dependency_overrides[settings_dep] = lambda: Settings(max_trace_products=3)
        assert "input" in _fields(client.post(URL, json=GOOD))
        app.dependency_overrides[settings_dep] = lambda: Settings(max_trace_products=4)
        assert client.post(URL, json=GOOD).status_code == 200
    finally:
        app.dependency_overrides.pop(settings_dep, None)


@pytest.mark.parametrize("field", ["input", "grad_output", "kernel_size", "stride", "padding"])
def test_a_non_finite_number_in_any_field_is_named(field: str) -> None:
    raw = json.dumps({**GOOD, field: 0}).replace(f'"{field}": 0', f'"{field}": [NaN, Infinity]')
    answer = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert field in _fields(answer)


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "[]", "null", "42", '{"input": ', '"input"', "[" * 5000 + "]" * 5000,
     '{"input": ' + "[" * 5000 + "]" * 5000 + "}"],
)
def test_garbage_bodies_get_a_4xx(raw: str) -> None:
    answer = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422), (raw, answer.text)
