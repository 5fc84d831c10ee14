"""GET /api/health: liveness, the device torch computes on, and torch's version."""

import torch
from fastapi.testclient import TestClient

from app.main import app
from app.settings import get_settings
from cnncore.device import resolve_device


def test_health_reports_device_and_torch() -> None:
    answer = TestClient(app).get("/api/health")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["status"] == "ok"
    assert body["device"] == str(resolve_device(get_settings().device))
    assert body["device"] == "cpu" or body["device"].startswith("cuda:")
    assert body["torch"] == torch.__version__.split("+")[0]
    assert len(body["process"]) == 12  # which worker answered (random per process)


def test_health_is_in_the_openapi_document() -> None:
    spec = TestClient(app).get("/openapi.json").json()
    assert "/api/health" in spec["paths"]
    assert "/api/conv/trace" in spec["paths"]
