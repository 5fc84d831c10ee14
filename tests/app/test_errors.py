"""Validation errors stay JSON and name the field, whatever the client sends."""

import pytest
from fastapi.testclient import TestClient

from app.main import app

client = TestClient(app)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number_is_a_422_naming_the_field(bad):
    # FastAPI's own handler echoes the NaN back and cannot encode it: a 500 before the fix
    body = '{"page": ' + bad + ', "state": {}}'
    response = client.post("/api/sessions", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["body", "page"] in locs


def test_large_inputs_are_not_echoed_back():
    grid = [[[0.5] * 64] * 64]
    response = client.post("/api/conv/shape", json={"channels": grid, "height": 5, "width": 5,
                                                    "kernel_size": 3})
    assert response.status_code == 422
    (error,) = [e for e in response.json()["detail"] if e["loc"] == ["body", "channels"]]
    assert "input" not in error
    assert len(response.content) < 2000


def test_non_finite_number_inside_free_form_state_is_refused():
    body = '{"page": "/conv", "state": {"stride": NaN}}'
    response = client.post("/api/sessions", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "state"]
