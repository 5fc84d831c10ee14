"""Liveness by heartbeats in the database (`app.runs.liveness`), on SQLite and on PostgreSQL: a
run whose process died on a host that never comes back is marked interrupted once its beats
are older than the timeout, and /stop works on it; a frozen worker is found the same way, while
a worker still starting (no beat yet) is given the longer start-up allowance."""

import time

import pytest
from fastapi.testclient import TestClient
from slow_workers import (
    START_DELAY,
    exiting_worker,
    frozen_worker,
    silent_worker,
    slow_start_worker,
)

from app.main import app
from app.owner_tokens import new_control_token, token_digest
from app.runs.history import record_events
from app.runs.manager import RunLimits, RunManager, get_run_manager
from app.runs.spec import plan_run
from app.runs.store import open_run_store
from app.schemas.runs import RunCreate
from app.settings import Settings

TIMEOUT = 120
TINY = {"model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 2,
        "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip
FOREIGN = "another-host|4242|abcd"  # a container that will never come back


@pytest.fixture
def store(open_database):
    return open_database(open_run_store)


def until(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def foreign_run(store, run_id: str, beat_at: float) -> str:
    """A run left 'running' by a process on another host, last heard of at `beat_at`."""
    store.create_run(run_id, {"model": "mlp", "data": {"name": "digits"}}, "cli", FOREIGN)
    record_events(store, run_id, [{"kind": "status", "status": "running"}])
    store.beat([run_id], beat_at)
    return run_id


def test_beats_are_kept_per_run_and_the_newest_wins(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    assert store.last_beats(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]) == {}
    store.beat(["aaaaaaaaaaaa"], 100.0)
    store.beat(["aaaaaaaaaaaa", "bbbbbbbbbbbb"], 250.5)
    assert store.last_beats(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]) == {
        "aaaaaaaaaaaa": 250.5, "bbbbbbbbbbbb": 250.5}  # fmt: skip
    store.set_run_token("aaaaaaaaaaaa", token_digest("secret"))
    assert store.run_token("aaaaaaaaaaaa") == token_digest("secret")
    assert store.run_token("bbbbbbbbbbbb") is None


def test_a_foreign_run_is_trusted_while_it_beats_and_interrupted_after(store, tmp_path):
    fresh = foreign_run(store, "aaaaaaaaaaaa", time.time())
    dead = foreign_run(store, "bbbbbbbbbbbb", time.time() - 600)
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(heartbeat_seconds=0.05, dead_after_seconds=2.0))  # fmt: skip
    try:
        assert manager.recovered == [dead]
        record = manager.get(dead)
        assert record.status == "interrupted"
        assert "no heartbeat for 6" in record.error and "another-host" in record.error
        assert manager.get(fresh).status == "running"
        # Nobody beats for the foreign run any more: the manager's own checks find it.
        until(lambda: manager.get(fresh).status == "interrupted")
        assert "no heartbeat" in manager.get(fresh).error
    finally:
        manager.close()


def test_stop_works_on_a_run_whose_host_never_came_back(store, tmp_path):
    run_id = foreign_run(store, "cccccccccccc", time.time())
    token = new_control_token()
    store.set_run_token(run_id, token_digest(token))
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(heartbeat_seconds=60.0, dead_after_seconds=30.0))  # fmt: skip
    app.dependency_overrides[get_run_manager] = lambda: manager
    try:
        client = TestClient(app)
        headers = {"X-Run-Token": token}
        alive = client.post(f"/api/runs/{run_id}/stop", headers=headers)
        assert alive.status_code == 409  # still beating: driven elsewhere, stop it there
        store.beat([run_id], time.time() - 60)  # then the host goes away
        stopped = client.post(f"/api/runs/{run_id}/stop", headers=headers)
        assert stopped.status_code == 200 and stopped.json()["status"] == "interrupted"
        assert client.post(f"/api/runs/{run_id}/stop", headers=headers).status_code == 409
    finally:
        app.dependency_overrides.pop(get_run_manager, None)
        manager.close()


def test_a_frozen_worker_is_found_by_its_silence_and_its_run_interrupted(store, tmp_path):
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(max_concurrent=1, heartbeat_seconds=0.1, dead_after_seconds=1.5),
                         target=frozen_worker)  # fmt: skip
    try:
        config = plan_run(RunCreate(**TINY), Settings(), manager.checkpoint_for_run)
        run_id = manager.create(config).id
        assert run_id in store.last_beats([run_id])  # beaten from its creation on
        until(lambda: manager.get(run_id).finished)
        record = manager.get(run_id)
        assert record.status == "interrupted" and "stopped answering" in record.error
        until(lambda: manager.active()["running"] == [])
    finally:
        manager.close()


def test_a_live_worker_keeps_its_run_beating(store, tmp_path):
    """A real worker, paused (no events at all): its own beats keep the run alive."""
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(heartbeat_seconds=0.1, dead_after_seconds=3.0))  # fmt: skip
    try:
        long = {**TINY, "epochs": 50, "batch_size": 4, "max_steps_per_epoch": None}
        run_id = manager.create(plan_run(RunCreate(**long), Settings(),
                                         manager.checkpoint_for_run)).id  # fmt: skip
        until(lambda: manager.get(run_id).summary.get("step", 0) > 0)
        manager.pause(run_id)
        until(lambda: manager.get(run_id).status == "paused")
        first = store.last_beats([run_id])[run_id]
        until(lambda: store.last_beats([run_id])[run_id] > first + 3.5)  # past dead_after
        assert manager.get(run_id).status == "paused"
        manager.stop(run_id)
        until(lambda: manager.get(run_id).finished)
        assert manager.get(run_id).status == "stopped"
    finally:
        manager.close()


def test_a_deleted_run_takes_its_events_token_and_heartbeat_with_it(store):
    store.create_run("dddddddddddd", {}, "web", "o")
    record_events(store, "dddddddddddd", [{"kind": "status", "status": "running"}])
    store.set_run_token("dddddddddddd", token_digest("t"))
    store.beat(["dddddddddddd"], 5.0)
    assert store.delete_run("dddddddddddd")
    assert store.get_run("dddddddddddd") is None
    assert store.events_after("dddddddddddd", 0, 10) == []
    assert store.run_token("dddddddddddd") is None and store.last_beats(["dddddddddddd"]) == {}
    assert not store.delete_run("dddddddddddd")


def test_a_worker_slow_to_start_is_not_taken_for_frozen_and_completes(store, tmp_path):
    """Silent for START_DELAY (> dead_after) before its first beat, as the first run on a
    loaded machine is: it is still starting, not frozen, and trains to the end."""
    limits = RunLimits(heartbeat_seconds=0.1, dead_after_seconds=1.5, start_seconds=300.0)
    assert 2 * limits.dead_after_seconds < START_DELAY
    manager = RunManager(store, tmp_path / "checkpoints", limits, target=slow_start_worker)
    try:
        config = plan_run(RunCreate(**TINY), Settings(), manager.checkpoint_for_run)
        run_id = manager.create(config).id
        until(lambda: manager.get(run_id).finished)
        record = manager.get(run_id)
        assert record.status == "completed", record.error
        assert record.summary["step"] == 6  # 2 epochs of 3 steps
        assert len(store.events_after(run_id, 0, 1000, kinds=["step"])) == 6
    finally:
        manager.close()


def test_a_worker_that_never_starts_is_ended_after_the_start_allowance(store, tmp_path):
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(heartbeat_seconds=0.1, dead_after_seconds=60.0,
                                   start_seconds=1.0), target=silent_worker)  # fmt: skip
    try:
        config = plan_run(RunCreate(**TINY), Settings(), manager.checkpoint_for_run)
        run_id = manager.create(config).id
        until(lambda: manager.get(run_id).finished)
        record = manager.get(run_id)
        assert record.status == "interrupted" and "did not start" in record.error
        assert "1 s after it was launched" in record.error
        until(lambda: manager.active()["running"] == [])
    finally:
        manager.close()


def test_a_worker_that_dies_while_starting_is_noticed_at_once(store, tmp_path):
    """The start-up allowance (300 s here) does not delay noticing a process that exited."""
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(heartbeat_seconds=0.1, start_seconds=300.0),
                         target=exiting_worker)  # fmt: skip
    try:
        config = plan_run(RunCreate(**TINY), Settings(), manager.checkpoint_for_run)
        run_id = manager.create(config).id
        until(lambda: manager.get(run_id).finished, timeout=60)
        record = manager.get(run_id)
        assert record.status == "failed" and "exited with code 3" in record.error
    finally:
        manager.close()
