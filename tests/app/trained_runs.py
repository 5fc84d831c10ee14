"""A run trained to its end by a real worker, for tests of what a finished run offers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value  # no parameters: FastAPI would read a default as a query parameter


@contextmanager
def run_services(app: Any, settings: Any, limits: Any, others: dict) -> Iterator[Any]:
    """A run manager on `settings`' SQLite file with `limits`, given to `app` with `settings`
    and `others` (dependency → the object it returns) while in the block; only these overrides
    are removed afterwards, and the manager and its store are closed."""
    from app.deps import settings_dep
    from app.runs.manager import RunManager, get_run_manager
    from app.runs.store import SQLiteRunStore

    manager = RunManager(SQLiteRunStore(settings.sqlite_path), settings.checkpoints_dir, limits)
    overrides = {settings_dep: settings, get_run_manager: manager, **others}
    app.dependency_overrides.update({key: _constant(value) for key, value in overrides.items()})
    try:
        yield manager
    finally:
        for dependency in overrides:
            app.dependency_overrides.pop(dependency, None)
        manager.close()
        manager.store.close()
