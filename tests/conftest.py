"""Fixtures shared by every test folder (app, browser, cnncore)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def _runs_in(folder: Path, limits) -> Iterator:
    """A run manager over its own SQLite store and checkpoints in `folder`, serving the app's
    `get_run_manager` until the block ends (then closed, and the override removed)."""
    from app.main import app
    from app.runs.manager import RunManager, get_run_manager
    from app.runs.store import SQLiteRunStore

    store = SQLiteRunStore(folder / "cnnviz.sqlite3")
    running = RunManager(store, folder / "checkpoints", limits)
    app.dependency_overrides[get_run_manager] = lambda: running
    try:
        yield running
    finally:
        app.dependency_overrides.pop(get_run_manager, None)
        running.close()
        store.close()


@pytest.fixture(scope="session")
def runs_in():
    """`with runs_in(folder, RunLimits(...)) as manager:` the app's runs live in `folder`, not
    var/, for the length of the block (a module's `manager` fixture yields inside it)."""
    return _runs_in
