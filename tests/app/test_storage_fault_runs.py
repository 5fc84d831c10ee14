"""The runs database turning unwritable while a run trains (chattr +i on the file and its WAL:
even root cannot write an immutable file): the pump that stores the run's events logs one
line naming the run, ends its training process and tells its live viewers the run ended; the
server answers on; once the file is writable again the run's end is stored (it is not left
"running").
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from slow_workers import chatty_worker

from app.main import app
from app.runs.manager import RunLimits, RunManager
from app.runs.store import SQLiteRunStore

TIMEOUT = 60.0
TINY = {"label": "tiny", "model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 1,
        "batch_size": 32, "max_steps_per_epoch": 2}  # fmt: skip


def until(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def chattr(flag: str, paths: list[Path]) -> None:
    for path in paths:
        done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"this file system has no immutable flag ({done.stderr.strip()})")


def test_a_run_whose_events_cannot_be_stored_is_ended_and_its_end_stored_later(tmp_path, caplog):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    database = tmp_path / "runs.sqlite3"
    store = SQLiteRunStore(database)
    manager = RunManager(store, tmp_path / "checkpoints", RunLimits(heartbeat_seconds=0.2),
                         target=chatty_worker)  # fmt: skip
    marked: list[Path] = []
    frames: list[bytes] = []
    try:
        run_id = manager.create(TINY).id
        until(lambda: store.get_run(run_id).last_event_id >= 5)  # its events are being stored
        worker = manager._workers[run_id]
        loop = asyncio.new_event_loop()
        subscription = loop.run_until_complete(_subscribe(manager, run_id, store))
        with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
            marked = [database, database.with_name(database.name + "-wal")]
            chattr("+i", marked)
            until(lambda: not worker.process.is_alive())  # the training process was ended
            until(lambda: run_id not in manager._workers)
        lines = [r.getMessage() for r in caplog.records if run_id in r.getMessage()]
        assert len(lines) == 1, lines
        assert "cannot be stored" in lines[0] and "training process is being ended" in lines[0]
        # the live viewer got the end (not stored yet) and its stream closed
        frames = loop.run_until_complete(asyncio.wait_for(_drain(subscription), TIMEOUT))
        loop.close()
        end = json.loads(frames[-1].split(b"data: ", 1)[1].split(b"\r\n", 1)[0])
        assert end["kind"] == "end" and end["reason"] == "interrupted"
        assert "could not store this run's events" in end["error"]
        assert TestClient(app).get("/api/health").status_code == 200  # the server lives
        chattr("-i", marked)
        marked = []
        until(lambda: store.get_run(run_id).status == "interrupted")  # stored by recover
        record = store.get_run(run_id)
        assert "could not store this run's events" in record.error
        assert manager.active()["running"] == []
    finally:
        if marked:
            subprocess.run(["chattr", "-i", *map(str, marked)], check=False)
        manager.close()
        store.close()


async def _subscribe(manager: RunManager, run_id: str, store):
    subscription = manager.subscribe(run_id, store.get_run(run_id).last_event_id)
    return subscription


async def _drain(subscription) -> list[bytes]:
    return [chunk async for chunk in subscription.frames()]
