"""The runs database failing while the server serves: deleted, replaced, or made unwritable
(chattr +i: even root cannot write an immutable file). Each is a 503 with a clear message and
one log line, and no request creates an empty, schema-less database file in its place.

Each test has its own temporary data folder and run manager (runs queue, no worker starts).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import app.errors as errors
from app.main import app
from app.runs.manager import RunLimits, RunManager, get_run_manager
from app.runs.store import SQLiteRunStore, StorageUnavailable

TINY = {"label": "tiny", "model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 1,
        "batch_size": 32, "max_steps_per_epoch": 2}  # fmt: skip
DATABASE = "cnnviz.sqlite3"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[TestClient, Path]]:
    """(client, data folder) of an app whose run manager uses a database in `tmp_path`."""
    store = SQLiteRunStore(tmp_path / DATABASE)
    manager = RunManager(store, tmp_path / "checkpoints", RunLimits(max_concurrent=0))
    app.dependency_overrides[get_run_manager] = lambda: manager
    errors._storage_logged.clear()  # each test sees its own first log line
    try:
        yield TestClient(app), tmp_path
    finally:
        app.dependency_overrides.pop(get_run_manager, None)
        # closing marks the queued runs interrupted: with the database gone that write fails
        with contextlib.suppress(sqlite3.Error):
            manager.close()
        store.close()


def database_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(DATABASE))


def refused_from_many_threads(client: TestClient) -> list:
    """The run list asked 8 times at once: sync routes run in different pool threads, each
    opening its own connection (the path that used to create new empty files)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: client.get("/api/runs"), range(8)))


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["type"] == "unavailable"
    assert "runs database" in response.json()["detail"]
    assert response.headers["retry-after"] == "30"
    assert "content-security-policy" in response.headers


def storage_log_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "runs database unavailable" in r.getMessage()]


def test_a_deleted_database_is_a_503_and_no_empty_file_appears(served, caplog):
    client, folder = served
    created = client.post("/api/runs", json=TINY)
    assert created.status_code == 201, created.text
    assert client.get("/api/runs").status_code == 200
    for name in database_files(folder):
        (folder / name).unlink()
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        for response in refused_from_many_threads(client):
            assert_unavailable(response)
        assert_unavailable(client.get(f"/api/runs/{created.json()['id']}"))
    assert database_files(folder) == []  # nothing re-created, by any thread
    lines = storage_log_lines(caplog)
    assert len(lines) == 1 and f"{DATABASE} is gone" in lines[0]  # logged once, not 9 times


def test_a_replaced_database_is_a_503(served, caplog):
    client, folder = served
    assert client.post("/api/runs", json=TINY).status_code == 201
    (folder / DATABASE).unlink()
    (folder / DATABASE).write_bytes(b"")  # another, empty file under the same name
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        assert_unavailable(client.get("/api/runs"))
    assert f"{DATABASE} was replaced" in storage_log_lines(caplog)[0]
    with pytest.raises(StorageUnavailable):
        client.app.dependency_overrides[get_run_manager]().store.list_runs(10)


@pytest.fixture
def immutable(served) -> Iterator[list[Path]]:
    """Files marked immutable (chattr +i) by the test; unmarked again afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    marked: list[Path] = []
    yield marked
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def make_immutable(path: Path, marked: list[Path]) -> None:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system has no immutable flag ({done.stderr.strip()})")
    marked.append(path)


@pytest.mark.parametrize("which", ["-wal", ""])
def test_an_unwritable_database_or_wal_is_a_503_and_the_server_lives(served, immutable,
                                                                    which, caplog):  # fmt: skip
    client, folder = served
    assert client.post("/api/runs", json=TINY).status_code == 201
    target = folder / f"{DATABASE}{which}"
    assert target.exists()
    make_immutable(target, immutable)
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        refused = client.post("/api/runs", json=TINY)
    assert_unavailable(refused)
    assert len(storage_log_lines(caplog)) == 1
    # reading still works where SQLite can, and the process answers everything else
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/runs").status_code in (200, 503)
