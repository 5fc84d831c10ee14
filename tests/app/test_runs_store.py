"""Run storage: records, event ids, status derived from events, persistence, concurrency, and
the metrics tables and CSV export read back from a history; every test against SQLite and
against PostgreSQL (a throwaway server, tests/app/conftest.py)."""

import csv
import io
import json
import math
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from app.runs.history import EPOCH_COLUMNS, STEP_COLUMNS, metrics_csv, metrics_tables, record_events
from app.runs.owners import claim_owner, owner_alive, release_owner
from app.runs.store import (
    ACTIVE_STATUSES,
    RunCommands,
    RunStore,
    SQLiteRunStore,
    describe_database,
    open_run_store,
)


@pytest.fixture
def open_store(open_database):
    """Opens another store on the test's one database (as another server process would)."""

    def open_() -> RunStore:
        return open_database(open_run_store)

    return open_


@pytest.fixture
def store(open_store):
    return open_store()


def _step(step, loss=1.0, **extra):
    return {
        "kind": "step",
        "step": step,
        "epoch": 1,
        "loss": loss,
        "accuracy": 0.5,
        "lr": 0.01,
        "images_per_second": 100.0,
        "elapsed_s": 0.1 * step,
        **extra,
    }


def test_a_new_run_is_queued_with_an_empty_history(store):
    record = store.create_run("aaaaaaaaaaaa", {"model": "mlp", "lr": 0.1}, "web", "h|1|t")
    assert (record.status, record.source, record.owner) == ("queued", "web", "h|1|t")
    assert record.config == {"model": "mlp", "lr": 0.1}
    assert record.last_event_id == 0 and record.summary == {} and record.checkpoint is None
    assert not record.finished
    assert store.events_after("aaaaaaaaaaaa", 0, 100) == []
    assert store.get_run("bbbbbbbbbbbb") is None


def test_event_ids_count_up_per_run_and_replay_exactly_what_follows(store):
    for run_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        store.create_run(run_id, {}, "web", "o")
    first = store.record("aaaaaaaaaaaa", [_step(1), _step(2)])
    store.record("bbbbbbbbbbbb", [_step(1)])
    second = store.record("aaaaaaaaaaaa", [_step(3)])
    assert [e.event_id for e in first + second] == [1, 2, 3]
    assert [e.event_id for e in store.events_after("bbbbbbbbbbbb", 0, 10)] == [1]
    after_one = store.events_after("aaaaaaaaaaaa", 1, 10)
    assert [json.loads(e.data)["step"] for e in after_one] == [2, 3]
    assert [e.event_id for e in store.events_after("aaaaaaaaaaaa", 0, 2)] == [1, 2]  # limit
    assert store.get_run("aaaaaaaaaaaa").last_event_id == 3
    # stored JSON is exactly what is sent to viewers: compact and strict
    assert first[0].data == json.dumps(_step(1), separators=(",", ":"))


def test_kinds_filter_and_non_finite_numbers_are_refused(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    store.record("aaaaaaaaaaaa", [_step(1), {"kind": "epoch", "epoch": 1, "step": 1}])
    assert [e.kind for e in store.events_after("aaaaaaaaaaaa", 0, 10, ["epoch"])] == ["epoch"]
    with pytest.raises(ValueError):
        store.record("aaaaaaaaaaaa", [_step(2, loss=math.nan)])
    assert store.get_run("aaaaaaaaaaaa").last_event_id == 2  # nothing half-written


@pytest.mark.parametrize(("events", "status", "error"), [
    ([{"kind": "status", "status": "running"}], "running", None),
    ([{"kind": "status", "status": "running"}, {"kind": "paused", "step": 3}], "paused", None),
    ([{"kind": "paused", "step": 3}, {"kind": "resumed", "step": 3}], "running", None),
    ([{"kind": "end", "reason": "completed"}], "completed", None),
    ([{"kind": "end", "reason": "early_stop"}], "completed", None),
    ([{"kind": "end", "reason": "stopped"}], "stopped", None),
    ([{"kind": "end", "reason": "diverged"}], "diverged", None),
    ([{"kind": "end", "reason": "stalled"}], "stalled", None),
    ([{"kind": "end", "reason": "failed", "error": "killed (SIGKILL)"}], "failed",
     "killed (SIGKILL)"),
    ([{"kind": "end", "reason": "interrupted", "error": "server stopped"}], "interrupted",
     "server stopped"),
])  # fmt: skip
def test_status_follows_the_events(store, events, status, error):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    record_events(store, "aaaaaaaaaaaa", events)
    record = store.get_run("aaaaaaaaaaaa")
    assert (record.status, record.error) == (status, error)
    assert record.finished == (status not in ACTIVE_STATUSES)


def test_a_diagnosis_is_kept_in_the_run_summary(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    diagnosis = {"signal": "loss_rose", "step": 2, "status": "diverged",
                 "findings": [{"cause": "lr_too_high", "facts": {"lr": 10.0}}]}  # fmt: skip
    explanation = {"ko": ["학습률이 너무 큽니다."], "en": ["Learning rate too high."]}
    diverged = {"kind": "diverged", "step": 2, "diagnosis": diagnosis, "explanation": explanation}
    record_events(store, "aaaaaaaaaaaa", [diverged, {"kind": "end", "reason": "diverged"}])
    record = store.get_run("aaaaaaaaaaaa")
    assert record.status == "diverged"
    assert record.summary["diagnosis"] == diagnosis
    assert record.summary["explanation"] == explanation
    assert [r.id for r in store.list_runs(10, statuses=("diverged",))] == ["aaaaaaaaaaaa"]


def test_summary_and_checkpoint_follow_the_events(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    start = {
        "kind": "start",
        "total_steps": 6,
        "steps_per_epoch": 3,
        "device": "cpu",
        "model": {"params": 100, "trainable_params": 40},
        "dataset": {"name": "digits"},
    }
    record_events(store, "aaaaaaaaaaaa", [start, _step(1, loss=2.0)])
    record_events(store, "aaaaaaaaaaaa", [_step(2, loss=1.5)])
    record_events(store, "aaaaaaaaaaaa", [
        {"kind": "epoch", "epoch": 1, "step": 2, "val_accuracy": 0.75, "val_loss": 0.9},
        {"kind": "checkpoint", "file": "epoch-001.safetensors"},
    ])  # fmt: skip
    summary = store.get_run("aaaaaaaaaaaa").summary
    assert summary["total_steps"] == 6 and summary["trainable_params"] == 40
    assert summary["dataset"] == "digits" and summary["step"] == 2 and summary["loss"] == 1.5
    assert summary["val_accuracy"] == 0.75 and summary["epochs_completed"] == 1
    assert store.get_run("aaaaaaaaaaaa").checkpoint == "epoch-001.safetensors"


def test_end_is_final(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    record_events(store, "aaaaaaaaaaaa", [{"kind": "end", "reason": "stopped"}])
    late = record_events(store, "aaaaaaaaaaaa", [_step(9), {"kind": "end", "reason": "failed",
                                                            "error": "late"}])  # fmt: skip
    assert late == []
    record = store.get_run("aaaaaaaaaaaa")
    assert (record.status, record.error, record.last_event_id) == ("stopped", None, 1)


def test_list_is_newest_first_and_filters_by_status(store):
    for run_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"):
        store.create_run(run_id, {}, "web", "o")
    record_events(store, "bbbbbbbbbbbb", [{"kind": "end", "reason": "completed"}])
    assert [r.id for r in store.list_runs(10)] == ["cccccccccccc", "bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    assert [r.id for r in store.list_runs(2)] == ["cccccccccccc", "bbbbbbbbbbbb"]
    assert [r.id for r in store.list_runs(10, ["completed"])] == ["bbbbbbbbbbbb"]


def test_everything_survives_reopening_the_store(open_store, tmp_path):
    first = open_store()
    first.create_run("aaaaaaaaaaaa", {"model": "lenet5"}, "cli", "o")
    record_events(first, "aaaaaaaaaaaa", [_step(i) for i in range(1, 51)])
    record_events(first, "aaaaaaaaaaaa", [{"kind": "end", "reason": "completed"}])
    first.close()
    again = open_store()
    record = again.get_run("aaaaaaaaaaaa")
    assert (record.status, record.config, record.last_event_id) == (
        "completed",
        {"model": "lenet5"},
        51,
    )
    assert [e.event_id for e in again.events_after("aaaaaaaaaaaa", 0, 100)] == list(range(1, 52))
    if isinstance(again, SQLiteRunStore):
        mode = sqlite3.connect(again.path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_concurrent_writers_get_unique_contiguous_ids(open_store):
    """Threads of one store and a second store on the same database (as the server and a CLI
    run, or two server workers, would be) all append to one run: every id is used once."""
    stores = [open_store(), open_store()]
    stores[0].create_run("aaaaaaaaaaaa", {}, "web", "o")
    written: list[int] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        store = stores[index % 2]
        for n in range(25):
            stored = store.record("aaaaaaaaaaaa", [_step(n, writer=index), _step(n)])
            with lock:
                written.extend(e.event_id for e in stored)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == list(range(1, 6 * 25 * 2 + 1))
    rows = stores[1].events_after("aaaaaaaaaaaa", 0, 1000)
    assert [e.event_id for e in rows] == list(range(1, 301))
    # each record() call's two events got neighbouring ids
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert json.loads(first.data)["step"] == json.loads(second.data)["step"]


def test_metrics_tables_and_csv(store):
    store.create_run("aaaaaaaaaaaa", {}, "web", "o")
    epoch = {"kind": "epoch", "epoch": 1, "step": 2, "train_loss": 1.2, "train_accuracy": 0.5,
             "val_loss": 1.1, "val_accuracy": 0.6, "lr": 0.01, "images_per_second": 90.0,
             "elapsed_s": 0.3, "confusion": [[1, 0], [0, 1]]}  # fmt: skip
    record_events(store, "aaaaaaaaaaaa", [
        {"kind": "start", "model": {"params": 1, "trainable_params": 1},
         "dataset": {"name": "digits"}},
        _step(1, loss=2.0), _step(2, loss=1.0), epoch, _step(3, loss=0.5, epoch=2),
        {"kind": "checkpoint", "file": "epoch-001.safetensors"},
    ])  # fmt: skip
    tables = metrics_tables(store, "aaaaaaaaaaaa")
    assert [row["loss"] for row in tables["steps"]] == [2.0, 1.0, 0.5]
    assert list(tables["steps"][0]) == list(STEP_COLUMNS)
    assert tables["epochs"] == [{name: epoch[name] for name in EPOCH_COLUMNS}]
    rows = list(csv.DictReader(io.StringIO(metrics_csv(tables))))
    assert [(r["kind"], r["step"]) for r in rows] == [
        ("step", "1"),
        ("step", "2"),
        ("epoch", "2"),
        ("step", "3"),
    ]
    assert float(rows[2]["val_accuracy"]) == 0.6 and rows[2]["loss"] == ""
    assert float(rows[1]["loss"]) == 1.0 and rows[1]["val_loss"] == ""


def test_owners_alive_and_gone():
    owner = claim_owner()
    assert owner_alive(owner)
    release_owner(owner)
    assert not owner_alive(owner)  # this process, but that manager is gone
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    host = owner.split("|")[0]
    assert not owner_alive(f"{host}|{finished.stdout.strip()}|x")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as sleeper:
        assert owner_alive(f"{host}|{sleeper.pid}|x")
        sleeper.kill()
    assert owner_alive(f"another-host|{finished.stdout.strip()}|x")  # cannot tell: trusted


def test_commands_reach_their_owner_once_in_order_and_wake_it(postgres_url, tmp_path):
    """PostgreSQL only (SQLite has no commands): words for one owner, oldest first, each
    taken once; the owner's waiter wakes when one arrives and waits out its timeout when
    none does or when the word is for someone else."""
    sender, owner = (open_run_store(postgres_url, tmp_path / "x") for _ in range(2))
    sqlite = SQLiteRunStore(tmp_path / "y.sqlite3")
    assert isinstance(owner, RunCommands) and not isinstance(sqlite, RunCommands)
    sqlite.close()
    waiter = owner.command_waiter("host|1|me")
    try:
        started = time.monotonic()
        waiter.wait(0.3)
        assert time.monotonic() - started >= 0.29  # nothing came: the whole timeout
        sender.send_command("host|2|other", "bbbbbbbbbbbb", "stop")
        started = time.monotonic()
        waiter.wait(0.3)
        assert time.monotonic() - started >= 0.29  # not ours
        for word in ("pause", "resume", "stop"):
            sender.send_command("host|1|me", "aaaaaaaaaaaa", word)
        started = time.monotonic()
        waiter.wait(5.0)
        assert time.monotonic() - started < 2.5  # woken by the first word, not the timeout
        assert owner.take_commands("host|1|me") == [("aaaaaaaaaaaa", w) for w in
                                                    ("pause", "resume", "stop")]  # fmt: skip
        assert owner.take_commands("host|1|me") == []
        assert sender.take_commands("host|2|other") == [("bbbbbbbbbbbb", "stop")]
    finally:
        waiter.close()
        sender.close()
        owner.close()


def test_a_dropped_connection_is_replaced_before_it_is_lent(postgres_url, tmp_path, monkeypatch):
    """The database server restarted or a firewall cut an idle connection: the next request
    gets a working one, not an error."""
    import psycopg

    from app.runs import store_postgres

    store = open_run_store(postgres_url, tmp_path / "x")
    try:
        store.create_run("aaaaaaaaaaaa", {}, "web", "o")
        ((idle, _),) = store._pool._idle
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (idle.info.backend_pid,))
        monkeypatch.setattr(store_postgres, "_CHECK_IDLE_SECONDS", 0.0)
        assert store.get_run("aaaaaaaaaaaa").id == "aaaaaaaaaaaa"
        assert idle.closed
    finally:
        store.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("", "/data/cnnviz.sqlite3"),
    ("sqlite:///tmp/runs.db", "tmp/runs.db"),
    ("postgresql://teacher:s3cret@db.example:5432/cnnviz", "postgresql://teacher:***@db.example:5432/cnnviz"),
    ("postgresql://teacher@db/cnnviz", "postgresql://teacher@db/cnnviz"),
])
def test_where_runs_are_recorded_is_shown_without_the_password(url, shown):
    from pathlib import Path

    assert describe_database(url, Path("/data/cnnviz.sqlite3")) == shown


def test_connections_of_ended_threads_are_closed(tmp_path):
    """The request thread pool retires idle threads and starts new ones: a store that kept every
    thread's connection grew the server by ~0.17 MB per thread for as long as it ran."""
    sqlite_store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    sqlite_store.create_run("r1", {"model": "lenet5"}, "api", "owner")
    opened: list[sqlite3.Connection] = []

    def read() -> None:
        assert sqlite_store.get_run("r1") is not None
        opened.append(sqlite_store._local.connection)

    for _ in range(20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert len(sqlite_store._all) <= 2  # this thread's and at most the last ended one's
    with pytest.raises(sqlite3.ProgrammingError):  # closed: using it fails
        opened[0].execute("SELECT 1")
    assert sqlite_store.get_run("r1") is not None  # this thread's connection still works
    sqlite_store.close()
