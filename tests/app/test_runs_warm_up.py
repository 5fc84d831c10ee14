"""The first run's warm-up (forkserver, lazy imports) starts when a page that starts runs is
served, not when a page merely lists runs (/features does, and a cold server's first feature
maps waited on it)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.main import app
from app.runs.manager import RunLimits, RunManager, get_run_manager
from app.runs.store import SQLiteRunStore


@pytest.fixture
def manager(tmp_path):
    store = SQLiteRunStore(tmp_path / "cnnviz.sqlite3")
    made = RunManager(store, tmp_path / "checkpoints", RunLimits(start_method="spawn"))
    app.dependency_overrides[get_run_manager] = lambda: made
    yield made
    app.dependency_overrides.pop(get_run_manager, None)
    made.close()
    store.close()


def _warming(manager: RunManager) -> bool:
    return manager._warming.locked()


def test_listing_runs_does_not_warm_but_opening_train_does(manager) -> None:
    client = TestClient(app)
    assert client.get("/api/runs").status_code == 200
    assert client.get("/features").status_code == 200
    assert not _warming(manager)
    assert client.get("/train").status_code == 200
    deadline = time.monotonic() + 30
    while not _warming(manager) and time.monotonic() < deadline:
        time.sleep(0.05)  # waits on the condition (the warm-up starts from a thread)
    assert _warming(manager)
    manager.warm_up_soon()  # once only: a second call starts nothing more
    assert _warming(manager)
