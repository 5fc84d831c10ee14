"""A run trained to its end by a real worker, for tests of what a finished run offers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 180


def train_to_end(post: Callable[..., Any], manager: Any, body: dict[str, Any]) -> str:
    """POST the run with `post` (a TestClient's or httpx's), wait until `manager` records its
    end, check it completed, and return its id."""
    created = post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    deadline = time.monotonic() + TIMEOUT
    while not manager.get(run_id).finished:
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.1)
    assert manager.get(run_id).status == "completed"
    return run_id
