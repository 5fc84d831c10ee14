"""The run manager with real worker processes, and its viewers.

Reliability as issue 6 asks: a killed worker → its run failed with the reason while another
run carries on; viewers that drop and reconnect get every event exactly once; a new manager on
the same database (a restarted server) keeps every run and history and marks abandoned runs
interrupted. Runs are tiny (an MLP on a few hundred 8×8 digits), so most of the time here is
spent starting Python processes."""

import asyncio
import json
import os
import random
import time

import pytest
import torch
from event_stream import run_events
from safetensors.torch import load_file

from app.runs.history import record_events
from app.runs.manager import QueueFull, RunConflict, RunLimits, RunManager, UnknownRun
from app.runs.owners import HOST
from app.runs.spec import plan_run
from app.runs.store import SQLiteRunStore
from app.runs.stream import RunChannel, RunSubscription
from app.schemas.runs import RunCreate
from app.settings import Settings

TIMEOUT = 120  # seconds for a worker to start and train (a busy 2-core machine is slow)
TINY = {"model": "mlp", "data": {"name": "digits", "limit": 300}, "epochs": 2,
        "batch_size": 32, "max_steps_per_epoch": 3, "norms_every": 2}  # fmt: skip
LONG = {**TINY, "epochs": 50, "batch_size": 4, "max_steps_per_epoch": None}  # ~3000 steps


def config(manager: RunManager, **values) -> dict:
    return plan_run(RunCreate(**values), Settings(), manager.checkpoint_for_run)


def events(store, run_id: str) -> list[dict]:
    return [json.loads(e.data) for e in store.events_after(run_id, 0, 100_000)]


def wait_for(store, run_id: str, predicate, timeout: float = TIMEOUT) -> list[dict]:
    """Poll the history until predicate(events) holds; return the events."""
    deadline = time.monotonic() + timeout
    while True:
        history = events(store, run_id)
        if predicate(history):
            return history
        assert time.monotonic() < deadline, f"timed out; last events: {history[-3:]}"
        time.sleep(0.05)


def until(condition, timeout: float = TIMEOUT) -> None:
    """Wait for a condition on the manager (not on the history)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kinds(history: list[dict]) -> list[str]:
    return [event["kind"] for event in history]


def ended(history: list[dict]) -> bool:
    return bool(history) and history[-1]["kind"] == "end"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def manager(db):
    store = SQLiteRunStore(db / "runs.sqlite3")
    running = RunManager(store, db / "checkpoints", RunLimits(max_concurrent=2, max_queued=4))
    yield running
    running.close()
    store.close()


@pytest.fixture(scope="module")
def watched(manager) -> tuple[str, list[tuple[int, dict]]]:
    """A tiny run watched live from creation to its end, through a viewer: its id and the
    (event id, event) pairs the viewer received."""
    record = manager.create(config(manager, **TINY, label="tiny"))

    async def watch() -> list[tuple[int, dict]]:
        subscription = manager.subscribe(record.id, 0)
        return [pair async for chunk in subscription.frames() for pair in run_events(chunk)]

    return record.id, asyncio.run(asyncio.wait_for(watch(), TIMEOUT))


@pytest.fixture(scope="module")
def finished_run(watched) -> str:
    return watched[0]


# --- a run, start to end ------------------------------------------------------------------------


def test_a_run_streams_its_whole_history_live_and_records_it(manager, watched):
    finished_run, seen = watched
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1))
    assert [e for _, e in seen] == events(manager.store, finished_run)
    assert kinds([e for _, e in seen]) == [
        "status", "status", "start", "step", "step", "step", "epoch", "checkpoint",
        "step", "step", "step", "epoch", "checkpoint", "checkpoint", "end",
    ]  # fmt: skip
    assert [e["status"] for _, e in seen[:2]] == ["queued", "running"]
    record = manager.get(finished_run)
    assert (record.status, record.checkpoint, record.error) == ("completed", "final.safetensors",
                                                                None)  # fmt: skip
    assert record.summary["epochs_completed"] == 2 and record.summary["step"] == 6
    files = [c.file for c in manager.list_checkpoints(finished_run)]
    assert files == ["epoch-001.safetensors", "epoch-002.safetensors", "final.safetensors"]
    # every event carries the worker's clock, in order
    times = [e["time"] for _, e in seen]
    assert times == sorted(times)


def test_a_finished_run_cannot_be_controlled(manager, finished_run):
    for action in (manager.pause, manager.resume, manager.stop):
        with pytest.raises(RunConflict, match="already ended"):
            action(finished_run)
    with pytest.raises(UnknownRun):
        manager.pause("000000000000")


# --- pause, resume, stop; a killed worker beside a healthy run ----------------------------------


def test_pause_resume_and_stop(manager):
    run_id = manager.create(config(manager, **LONG)).id
    wait_for(manager.store, run_id, lambda h: "step" in kinds(h))
    manager.pause(run_id)
    history = wait_for(manager.store, run_id, lambda h: "paused" in kinds(h))
    assert manager.get(run_id).status == "paused"
    steps = kinds(history).count("step")
    manager.resume(run_id)
    wait_for(manager.store, run_id, lambda h: kinds(h).count("step") > steps + 2)
    assert manager.get(run_id).status == "running"
    manager.stop(run_id)
    history = wait_for(manager.store, run_id, ended)
    assert history[-1]["reason"] == "stopped"
    # No training while paused: nothing but the pause words between "paused" and "resumed".
    order = kinds(history)
    assert order[order.index("paused") + 1] == "resumed"
    assert history[-2]["kind"] == "checkpoint" and history[-2]["final"]
    assert manager.get(run_id).status == "stopped"


def test_a_killed_worker_fails_its_run_and_nothing_else(manager):
    doomed = manager.create(config(manager, **LONG)).id
    healthy = manager.create(config(manager, **TINY, seed=1)).id
    wait_for(manager.store, doomed, lambda h: "step" in kinds(h))
    manager.kill_worker(doomed)
    history = wait_for(manager.store, doomed, ended)
    assert history[-1]["reason"] == "failed"
    record = manager.get(doomed)
    assert record.status == "failed"
    assert "killed (SIGKILL)" in record.error
    healthy_history = wait_for(manager.store, healthy, ended)
    assert healthy_history[-1]["reason"] == "completed"
    assert manager.get(healthy).status == "completed"


# --- queue ---------------------------------------------------------------------------------------


def test_runs_queue_beyond_the_limit_and_a_queued_run_can_be_stopped(db):
    store = SQLiteRunStore(db / "runs.sqlite3")
    one_at_a_time = RunManager(store, db / "checkpoints", RunLimits(max_concurrent=1,
                                                                    max_queued=1))  # fmt: skip
    try:
        first = one_at_a_time.create(config(one_at_a_time, **LONG)).id
        one_at_a_time.pause(first)
        second = one_at_a_time.create(config(one_at_a_time, **TINY)).id
        assert one_at_a_time.get(second).status == "queued"
        assert one_at_a_time.active() == {"running": [first], "queued": [second]}
        with pytest.raises(QueueFull):
            one_at_a_time.create(config(one_at_a_time, **TINY))
        with pytest.raises(RunConflict, match="waiting"):
            one_at_a_time.pause(second)
        one_at_a_time.stop(second)
        assert kinds(events(store, second)) == ["status", "end"]  # never got a process
        assert one_at_a_time.get(second).status == "stopped"
        one_at_a_time.stop(first)
        assert wait_for(store, first, ended)[-1]["reason"] == "stopped"
    finally:
        one_at_a_time.close()
        store.close()


# --- transfer learning ---------------------------------------------------------------------------


def test_transfer_keeps_frozen_layers_and_trains_a_new_head(manager, finished_run):
    values = {
        **TINY,
        "data": {"name": "digits", "limit": 300, "classes": [5, 6, 7]},
        "init_from": {"run_id": finished_run, "freeze": ["hidden.0"]},
        "activation": "sigmoid",
    }  # the architecture comes from the source, not from here
    run_id = manager.create(config(manager, **values)).id
    history = wait_for(manager.store, run_id, ended)
    assert history[-1]["reason"] == "completed", history[-1]
    start = next(e for e in history if e["kind"] == "start")
    assert start["config"]["activation"] is None
    source = load_file(manager.checkpoint_for_run(finished_run))
    tuned = load_file(manager.checkpoint_for_run(run_id))
    frozen = source["hidden.0.weight"].numel() + source["hidden.0.bias"].numel()
    assert start["model"]["params"] - start["model"]["trainable_params"] == frozen
    for name in ("hidden.0.weight", "hidden.0.bias"):
        assert torch.equal(source[name], tuned[name])  # frozen: not one bit moved
    assert not torch.equal(source["hidden.2.weight"], tuned["hidden.2.weight"])  # trained
    assert source["classifier.weight"].shape[0] == 10 and tuned["classifier.weight"].shape[0] == 3


# --- viewers: no loss, no duplicates -------------------------------------------------------------


def _frame_ids(chunks: list[bytes]) -> list[int]:
    return [event_id for chunk in chunks for event_id, _ in run_events(chunk)]


@pytest.mark.parametrize("seed", range(4))
def test_viewers_that_drop_and_reconnect_miss_nothing_and_repeat_nothing(tmp_path, seed):
    """A writer thread stores and pushes events in random batches; viewers (some with tiny
    mailboxes, some arriving late) drop after random counts and reconnect from their last id."""
    rng = random.Random(seed)
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    channel = RunChannel(spacing_per_viewer=rng.choice([0.0, 0.003, 0.02]))
    total = 400

    def write() -> None:
        written = 0
        while written < total - 1:
            size = min(rng.randint(1, 12), total - 1 - written)
            batch = [{"kind": "step", "step": written + i + 1} for i in range(size)]
            channel.publish(record_events(store, "aaaaaaaaaaaa", batch))
            written += size
            time.sleep(rng.random() * 0.004)
        end = {"kind": "end", "reason": "completed"}
        channel.publish(record_events(store, "aaaaaaaaaaaa", [end]))

    async def viewer(mailbox: int, delay: float, drops: list[int]) -> list[int]:
        await asyncio.sleep(delay)
        received: list[int] = []
        while True:
            subscription = RunSubscription(
                store, "aaaaaaaaaaaa", received[-1] if received else 0, channel,
                replay_batch=rng.choice([7, 50, 1000]), poll_seconds=0.05,
                mailbox_frames=mailbox, abandoned=lambda record: False,
            )  # fmt: skip
            limit = drops.pop(0) if drops else None
            count = 0
            async for frame in subscription.frames():
                received.extend(_frame_ids([frame]))
                count += 1
                if limit is not None and count >= limit:
                    break  # the viewer's connection drops here
            subscription.close()
            if limit is None or received[-1] == total:
                return received

    async def main() -> list[list[int]]:
        viewers = [viewer(rng.choice([2, 3, 4096]), rng.random() * 0.3,
                          sorted(rng.sample(range(1, 120), 3))) for _ in range(6)]  # fmt: skip
        writer = asyncio.to_thread(write)
        results = await asyncio.wait_for(asyncio.gather(writer, *viewers), 60)
        return results[1:]

    for received in asyncio.run(main()):
        assert received == list(range(1, total + 1))
    assert len(channel) == 0  # every viewer unregistered
    store.close()


def test_many_viewers_get_fewer_larger_deliveries(tmp_path):
    """Deliveries to a run's viewers are spaced by their number: 10 viewers of events arriving
    every 2 ms get a write at most every 50 ms; one viewer gets each at once."""
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")

    async def watch(channel: RunChannel, viewers: int) -> tuple[list[list[int]], float]:
        subscriptions = [RunSubscription(store, "aaaaaaaaaaaa", 0, channel, replay_batch=1000,
                                         poll_seconds=0.05, mailbox_frames=4096,
                                         abandoned=lambda record: False)
                         for _ in range(viewers)]  # fmt: skip

        async def read(subscription) -> list[int]:
            return [len(_frame_ids([chunk])) async for chunk in subscription.frames()]

        def write() -> None:
            for _ in range(150):
                channel.publish(record_events(store, "aaaaaaaaaaaa", [{"kind": "step"}]))
                time.sleep(0.002)
            end = {"kind": "end", "reason": "completed"}
            channel.publish(record_events(store, "aaaaaaaaaaaa", [end]))

        began = time.perf_counter()
        readers = asyncio.gather(*(read(s) for s in subscriptions))
        _, sizes = await asyncio.gather(asyncio.to_thread(write), readers)
        return sizes, time.perf_counter() - began

    crowd, seconds = asyncio.run(watch(RunChannel(spacing_per_viewer=0.005, max_spacing=0.05),
                                       10))  # fmt: skip
    for chunks in crowd:
        assert sum(chunks) == 151  # every event, once
        assert len(chunks) <= seconds / 0.05 + 2  # the first, then one per 50 ms at most
    store_run = "bbbbbbbbbbbb"
    store.create_run(store_run, {}, "web", "o")
    channel = RunChannel(spacing_per_viewer=0.005, max_spacing=0.05)
    received: list[int] = []

    async def alone() -> None:
        # The database is polled only every 10 minutes here: a frame that arrives came from
        # the push, each without a later event to complete a batch (no timing in the test).
        subscription = RunSubscription(store, store_run, 0, channel, replay_batch=1000,
                                       poll_seconds=600, mailbox_frames=4096,
                                       abandoned=lambda record: False)  # fmt: skip
        frames = subscription.frames()
        for _ in range(3):
            channel.publish(record_events(store, store_run, [{"kind": "step"}]))
            frame = await asyncio.wait_for(anext(frames), 60)  # only a hang fails here
            received.extend(event_id for event_id, _ in run_events(frame))
        await frames.aclose()

    asyncio.run(alone())
    assert received == [1, 2, 3]  # each delivered alone, never held for a later batch
    store.close()


def test_a_run_of_another_process_is_followed_from_the_database(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    manager = RunManager(store, tmp_path / "checkpoints", RunLimits(poll_seconds=0.02))
    # a live foreign owner: this process under another token that stays claimed
    store.create_run("aaaaaaaaaaaa", {}, "cli", manager.owner.rsplit("|", 1)[0] + "|cli")
    from app.runs import owners

    owners._LIVE_TOKENS.add("cli")

    def write() -> None:
        for step in range(1, 31):
            record_events(store, "aaaaaaaaaaaa", [{"kind": "step", "step": step}])
            time.sleep(0.002)
        record_events(store, "aaaaaaaaaaaa", [{"kind": "end", "reason": "completed"}])

    async def main() -> list[bytes]:
        subscription = manager.subscribe("aaaaaaaaaaaa", 5)
        assert not subscription.live
        writer = asyncio.create_task(asyncio.to_thread(write))
        frames = [frame async for frame in subscription.frames()]
        await writer
        return frames

    try:
        assert _frame_ids(asyncio.run(main())) == list(range(6, 32))
    finally:
        owners._LIVE_TOKENS.discard("cli")
        manager.close()
        store.close()


def test_a_viewer_of_an_abandoned_run_sees_it_interrupted(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    manager = RunManager(store, tmp_path / "checkpoints", RunLimits(poll_seconds=0.02))
    store.create_run("aaaaaaaaaaaa", {}, "cli", manager.owner.rsplit("|", 1)[0] + "|gone")
    record_events(store, "aaaaaaaaaaaa", [{"kind": "step", "step": 1}])

    async def main() -> list[dict]:
        frames = [f async for f in manager.subscribe("aaaaaaaaaaaa", 0).frames()]
        return [event for chunk in frames for _, event in run_events(chunk)]

    try:
        seen = asyncio.run(main())
        assert kinds(seen) == ["step", "end"] and seen[-1]["reason"] == "interrupted"
        assert manager.get("aaaaaaaaaaaa").status == "interrupted"
    finally:
        manager.close()
        store.close()


def test_a_stop_ends_a_worker_stuck_in_one_step_within_the_grace(tmp_path):
    """A worker that never reads the stop (one endless step) is killed after the grace, and
    its run ends as stopped, saying why; the manager takes the next run."""
    from slow_workers import frozen_worker

    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    manager = RunManager(store, tmp_path / "checkpoints",
                         RunLimits(max_concurrent=1, stop_grace_seconds=0.5),
                         target=frozen_worker)  # fmt: skip
    try:
        run_id = manager.create(config(manager, **TINY)).id
        assert manager.active()["running"] == [run_id]
        manager.stop(run_id)
        history = wait_for(store, run_id, ended)
        assert history[-1]["reason"] == "stopped"
        record = manager.get(run_id)
        assert record.status == "stopped" and "still running 0.5 s after the stop" in record.error
        nxt = manager.create(config(manager, **TINY)).id  # the slot is freed for it
        until(lambda: manager.active()["running"] == [nxt])
    finally:
        manager.close()
        store.close()


# --- a restarted server --------------------------------------------------------------------------


def test_a_new_manager_keeps_every_run_and_interrupts_abandoned_ones(db, manager, finished_run):
    """Runs here: those of the module's manager (finished), one running when its manager
    closed (a server shutting down), one left "running" by a process that no longer exists,
    and one driven by a live process elsewhere (left alone)."""
    store = manager.store
    before = {r.id: events(store, r.id) for r in store.list_runs(100)}
    closing_store = SQLiteRunStore(db / "runs.sqlite3")
    closing = RunManager(closing_store, db / "checkpoints")
    cut = closing.create(config(closing, **LONG)).id
    wait_for(store, cut, lambda h: "step" in kinds(h))
    closing.close()
    closing_store.close()
    assert wait_for(store, cut, ended)[-1]["reason"] == "interrupted"
    store.create_run("aaaaaaaaaaaa", {}, "cli", f"{HOST}|999999999|x")
    record_events(store, "aaaaaaaaaaaa", [{"kind": "status", "status": "running"}])
    # pytest's parent process stands in for a live `cnnviz train` elsewhere on this host
    store.create_run("bbbbbbbbbbbb", {}, "cli", f"{HOST}|{os.getppid()}|y")

    restarted_store = SQLiteRunStore(db / "runs.sqlite3")
    restarted = RunManager(restarted_store, db / "checkpoints")
    try:
        assert restarted.recovered == ["aaaaaaaaaaaa"]
        for run_id, history in before.items():
            assert events(restarted_store, run_id) == history  # nothing lost, nothing added
        assert restarted.get(finished_run).status == "completed"
        assert restarted.get(cut).error == "the server stopped"
        orphan = restarted.get("aaaaaaaaaaaa")
        assert orphan.status == "interrupted" and "999999999" in orphan.error
        assert restarted.get("bbbbbbbbbbbb").status == "queued"
        assert restarted.checkpoint_for_run(finished_run).name == "final.safetensors"
    finally:
        restarted.close()
        restarted_store.close()


def test_the_spawn_start_method_runs_the_same(tmp_path):
    """`run_start_method = "spawn"`: a fresh interpreter per run, same events."""
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    spawning = RunManager(store, tmp_path / "checkpoints", RunLimits(start_method="spawn"))
    try:
        run_id = spawning.create(config(spawning, **TINY)).id
        history = wait_for(store, run_id, ended)
        assert history[-1]["reason"] == "completed"
        assert kinds(history).count("step") == 6 and kinds(history).count("checkpoint") == 3
    finally:
        spawning.close()
        store.close()
