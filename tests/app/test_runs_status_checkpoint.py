"""A finished run's status is never seen without its final checkpoint.

The worker saves `final.safetensors`, then sends its `checkpoint` event, then `end`; the store
derives both the record's `checkpoint` (from `checkpoint`) and its status (from `end`) from the
events in the transaction that stores them (`app.runs.history.record_events`), and
`GET /api/runs/{id}` reads that one row. So a reader can only see the committed states, and in
each of them `completed` comes with `checkpoint == "final.safetensors"`. This test checks every
committed state (the manager's `record_events` is wrapped: after each transaction the API is
asked at once, from the thread that wrote it) plus a reader polling the API 100 times a second, on
a real short run whose events are each stored in a transaction of their own (the `checkpoint`
and `end` events never together: the widest window there could be).
"""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

import app.runs.manager as run_manager
from app.main import app
from app.runs.manager import RunLimits
from app.runs.spec import FINAL_CHECKPOINT
from app.runs.store import FINISHED_STATUSES
from app.settings import Settings
from tests.app.trained_runs import run_services, train_to_end

TINY = {"label": "tiny", "model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 2,
        "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip


class Observed:
    """What the API answered for the run, from every committed state and from a poller."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.run_id: str | None = None
        self.states: list[tuple[str, str | None, list[str]]] = []  # status, checkpoint, files
        self.lock = threading.Lock()

    def look(self) -> None:
        if self.run_id is None:
            return
        run = self.client.get(f"/api/runs/{self.run_id}").json()
        files = [c["file"] for c in self.client.get(f"/api/runs/{self.run_id}/checkpoints").json()]
        with self.lock:
            self.states.append((run["status"], run["checkpoint"], files))


@pytest.fixture
def observed(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    limits = RunLimits(max_concurrent=1, batch_seconds=0.0)
    with run_services(app, settings, limits, {}) as manager:
        client = TestClient(app)
        seen = Observed(client)
        record_events = run_manager.record_events

        def one_at_a_time_then_look(store, run_id, events):
            stored = []
            for event in events:
                stored += record_events(store, run_id, [event])
                seen.look()  # the state this transaction committed, before any later one
            return stored

        monkeypatch.setattr(run_manager, "record_events", one_at_a_time_then_look)
        yield seen, client, manager


def test_completed_is_only_seen_with_the_final_checkpoint(observed):
    seen, client, manager = observed
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.01):  # a reader polling 100 times a second
            seen.look()

    poller = threading.Thread(target=poll, daemon=True)

    def post(path, json):
        created = client.post(path, json=json)
        seen.run_id = created.json()["id"]
        poller.start()
        return created

    try:
        run_id = train_to_end(post, manager, TINY)
    finally:
        done.set()
        poller.join(timeout=30)
    seen.look()

    statuses = [status for status, _, _ in seen.states]
    assert "running" in statuses and statuses[-1] == "completed"
    for status, checkpoint, files in seen.states:
        if status in FINISHED_STATUSES:
            assert checkpoint == FINAL_CHECKPOINT, (status, checkpoint)
            assert files[-1] == FINAL_CHECKPOINT, files
    # the checkpoint and the end were stored apart: a state between them was observed
    between = [(s, c) for s, c, _ in seen.states if c == FINAL_CHECKPOINT and s == "running"]
    assert between, "the final checkpoint was never seen before the end: no window was tested"
    assert manager.get(run_id).checkpoint == FINAL_CHECKPOINT
