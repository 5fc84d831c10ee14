"""Run records and their full event histories, in SQLite (the embedded default).

Two tables: `runs` (id, config JSON, status, who drives it, created/updated, error, latest
checkpoint, a small summary for run lists, the last event id) and `events` (run id, event id,
kind, JSON). Event ids count 1, 2, 3, … per run; they are the SSE event ids, so a viewer that
reconnects with `Last-Event-ID: n` is sent exactly the rows after n.

`RunStore` is the whole interface the rest of the app uses (the manager, the routes, the CLI):
six methods over plain values. `open_run_store` picks the implementation from the database URL:
this module's SQLite store (one host), or `app.runs.store_postgres` (a database server every
server worker, on any host, shares; it also carries `RunCommands`). `SQLiteRunStore`:
WAL journal (readers never wait for the writer; Hipp, "Write-Ahead Logging",
https://sqlite.org/wal.html), one connection per thread (sqlite3 connections must not be shared
across threads without care), `BEGIN IMMEDIATE` around each write so event ids are assigned
atomically even with several writing processes (the server and a `cnnviz train` CLI run).

Storage faults: a connection is opened only on the file the store created (`mode=rw`, never
`rwc`), so a database file deleted while serving is not silently re-created empty and
schema-less by each new thread; and before each use the store checks that the path still names
the file it opened (same device and inode), since a connection to a deleted file would go on
writing into the unlinked inode, events nobody could ever read. Either fault, and any error
SQLite reports (a read-only file or WAL, a full disk), is a `sqlite3.Error`: the API answers
503 and logs it (app/errors.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ACTIVE_STATUSES",
    "END_STATUS",
    "FINISHED_STATUSES",
    "CommandWaiter",
    "RunChanges",
    "RunCommands",
    "RunRecord",
    "RunStore",
    "SQLiteRunStore",
    "StorageUnavailable",
    "StoredEvent",
    "encode_event",
    "open_run_store",
    "shared_database",
]

ACTIVE_STATUSES = ("queued", "running", "paused")
FINISHED_STATUSES = ("completed", "stopped", "diverged", "stalled", "failed", "interrupted")
# The "end" event's reason → the run's final status. The trainer ends with completed,
# early_stop, stopped, diverged (the loss blew up or rose far above its start) or stalled (the
# accuracy stayed at chance: cnncore.diagnosis); the manager adds failed and interrupted.
END_STATUS = {"completed": "completed", "early_stop": "completed", "stopped": "stopped",
              "diverged": "diverged", "stalled": "stalled", "failed": "failed",
              "interrupted": "interrupted"}  # fmt: skip

# The tables every store shares (PostgreSQL too: app.runs.store_postgres), without the end of
# the events table's definition, where each database adds its own options.
RUN_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    error TEXT,
    checkpoint TEXT,
    summary TEXT NOT NULL DEFAULT '{}',
    last_event_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, event_id)
)"""
# Who may control a run (the SHA-256 of the token its creator was given; app.owner_tokens) and
# when each run was last known to be alive (app.runs.liveness): tables of their own, so a
# database made before them gains them with CREATE TABLE IF NOT EXISTS.
OWNER_TABLES = """
CREATE TABLE IF NOT EXISTS run_tokens (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_heartbeats (
    run_id TEXT PRIMARY KEY,
    beat_at DOUBLE PRECISION NOT NULL
);
"""
# DOUBLE PRECISION has SQLite's REAL affinity (https://sqlite.org/datatype3.html, 3.1).
_SCHEMA = RUN_TABLES + " WITHOUT ROWID;" + OWNER_TABLES
# One row per run, the last beat written (SQLite ≥ 3.24 and PostgreSQL share this upsert).
HEARTBEAT_UPSERT = ("INSERT INTO run_heartbeats (run_id, beat_at) VALUES (%s, %s) ON CONFLICT "
                    "(run_id) DO UPDATE SET beat_at = excluded.beat_at")
_RUN_COLUMNS = ("id, config, status, source, owner, created_at, updated_at, error, checkpoint, "
                "summary, last_event_id")  # fmt: skip


def encode_event(event: dict[str, Any]) -> str:
    """Compact strict JSON (the trainer already turned NaN and infinities into null)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class RunRecord:
    id: str
    config: dict[str, Any]  # the training config, plus `init_from` for transfer runs
    status: str  # one of ACTIVE_STATUSES or FINISHED_STATUSES
    source: str  # "web" or "cli"
    owner: str  # "host|pid|token" of the process that drives the run
    created_at: float  # Unix seconds
    updated_at: float
    error: str | None
    checkpoint: str | None  # file name of the newest checkpoint, in the run's own folder
    summary: dict[str, Any]  # latest figures (step, loss, val accuracy, …) for run lists
    last_event_id: int

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass(frozen=True)
class RunChanges:
    """What a batch of events changes in the run's record (None: unchanged)."""

    status: str | None = None
    error: str | None = None
    checkpoint: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # merged into the stored summary


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    kind: str
    data: str  # the event as stored JSON: sent to viewers as it is, never encoded again

    @property
    def final(self) -> bool:
        """The last event a run ever gets (its "end")."""
        return self.kind == "end"


class RunStore(Protocol):
    """What the app needs from run storage."""

    def create_run(self, run_id: str, config: dict[str, Any], source: str,
                   owner: str) -> RunRecord: ...  # fmt: skip

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, limit: int, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        """Newest first; only the given statuses when `statuses` is set."""
        ...

    def record(self, run_id: str, events: Sequence[dict[str, Any]],
               changes: RunChanges | None = None) -> list[StoredEvent]:  # fmt: skip
        """Append events (ids assigned here) and apply the run's changes, all or nothing.
        `changes.summary` is merged key by key into the stored one. A finished run takes
        nothing more: the call stores nothing and returns []."""
        ...

    def events_after(self, run_id: str, after: int, limit: int,
                     kinds: Sequence[str] | None = None) -> list[StoredEvent]: ...  # fmt: skip

    def set_run_token(self, run_id: str, digest: str) -> None:
        """Keep the digest of the token that controls the run (once, at creation)."""
        ...

    def run_token(self, run_id: str) -> str | None:
        """The digest kept for the run; None for a run nobody can control over the API."""
        ...

    def beat(self, run_ids: Sequence[str], at: float) -> None:
        """Record that these runs were alive at `at` (Unix seconds)."""
        ...

    def delete_run(self, run_id: str) -> bool:
        """Remove a run with its events, token and heartbeat; False when there was none."""
        ...

    def last_beats(self, run_ids: Sequence[str]) -> dict[str, float]:
        """The last beat of each run that has one."""
        ...

    def close(self) -> None: ...


class CommandWaiter(Protocol):
    def wait(self, timeout: float) -> None:
        """Return early when a word for the owner may have arrived, else after `timeout`."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class RunCommands(Protocol):
    """Pause, resume and stop for a run driven by another server process, through the store
    (`app.runs.remote`). Only stores that several server processes share have them."""

    def send_command(self, owner: str, run_id: str, word: str) -> None: ...

    def take_commands(self, owner: str) -> list[tuple[str, str]]:
        """The (run id, word) pairs left for `owner`, oldest first, each taken once."""
        ...

    def command_waiter(self, owner: str) -> CommandWaiter:
        """A waiter listening for words to `owner` from now on."""
        ...


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def shared_database(url: str) -> bool:
    """Whether the URL names a database server that several server workers can share."""
    return url.startswith(_POSTGRES_SCHEMES)


def describe_database(url: str, sqlite_path: Path) -> str:
    """Where runs are recorded, for people to read: the SQLite file, or the database URL with its
    password hidden."""
    if not url:
        return str(sqlite_path)
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_run_store(url: str, sqlite_path: Path, pool_size: int = 8) -> RunStore:
    """The store a database URL names: empty → the SQLite file `sqlite_path`;
    `sqlite:///path` → another SQLite file; `postgresql://…` → PostgreSQL (psycopg needed:
    `pip install 'cnnviz[postgres]'`)."""
    if not url:
        return SQLiteRunStore(sqlite_path)
    if url.startswith("sqlite:///"):
        return SQLiteRunStore(Path(url.removeprefix("sqlite:///")))
    if shared_database(url):
        try:
            from app.runs.store_postgres import PostgresRunStore
        except ImportError as exc:
            raise RuntimeError("a postgresql:// database_url needs psycopg: "
                               "pip install 'cnnviz[postgres]'") from exc  # fmt: skip
        return PostgresRunStore(url, pool_size=pool_size)
    scheme = url.split(":", 1)[0]
    raise RuntimeError(f"database_url {scheme}:… is not supported; use sqlite:///path or "
                       "postgresql://user:password@host/database")  # fmt: skip


def _next_events(
    row: tuple, encoded: Sequence[tuple[str, str]], changes: RunChanges
) -> tuple[list[StoredEvent], tuple[Any, ...]] | None:
    """What `record` writes, from the run's stored (last_event_id, summary, status): the events
    numbered on from the last one, and the values of its runs UPDATE but the run id. None
    when the run has ended: "end" is final, a late event (a race with a stop) is dropped."""
    last, stored_summary, current = row
    if current in FINISHED_STATUSES:
        return None
    stored = [StoredEvent(last + i + 1, kind, data) for i, (kind, data) in
              enumerate(encoded)]  # fmt: skip
    merged = json.dumps({**json.loads(stored_summary), **changes.summary}, allow_nan=False)
    return stored, (last + len(stored), time.time(), merged, changes.status, changes.error,
                    changes.checkpoint)  # fmt: skip


def _row_to_record(row: tuple) -> RunRecord:
    (run_id, config, status, source, owner, created, updated, error, checkpoint, summary,
     last) = row  # fmt: skip
    return RunRecord(run_id, json.loads(config), status, source, owner, created, updated, error,
                     checkpoint, json.loads(summary), last)  # fmt: skip


class StorageUnavailable(sqlite3.OperationalError):
    """The database file is gone or was replaced while the store was open."""


class SQLiteRunStore:
    """`RunStore` on one SQLite file; safe to use from any thread and several processes."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = busy_timeout_ms
        self._local = threading.local()
        # Every open connection by the thread it serves: closed when the store closes, or when a
        # new thread opens its own after the old one ended (the request thread pool retires idle
        # threads, so keeping the connections of ended threads grew the server without bound).
        self._all: dict[threading.Thread, sqlite3.Connection] = {}
        self._all_lock = threading.Lock()
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        connection = self._connection(create=True)
        connection.executescript(_SCHEMA)
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int]:
        try:
            found = os.stat(self.path)
        except FileNotFoundError as exc:
            raise StorageUnavailable(f"the runs database {self.path.name} is gone") from exc
        return found.st_dev, found.st_ino

    def _connection(self, create: bool = False) -> sqlite3.Connection:
        if self._identity is not None and self._file_identity() != self._identity:
            raise StorageUnavailable(f"the runs database {self.path.name} was replaced")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:
                raise RuntimeError("the run store is closed")
            # isolation_level=None: no implicit transactions; writes open their own below.
            # mode=rw once the file exists: a deleted file is an error, not a new empty one.
            uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
            connection = sqlite3.connect(uri, uri=True, isolation_level=None,
                                         check_same_thread=False)  # fmt: skip
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file
            # (https://sqlite.org/pragma.html#pragma_synchronous): fine for metric history.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            self._local.connection = connection
            with self._all_lock:
                ended = [thread for thread in self._all if not thread.is_alive()]
                for thread in ended:
                    self._all.pop(thread).close()
                self._all[threading.current_thread()] = connection
        return connection

    def create_run(self, run_id: str, config: dict[str, Any], source: str,
                   owner: str) -> RunRecord:  # fmt: skip
        now = time.time()
        self._connection().execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, 'queued', ?, ?, ?, ?, NULL, NULL, "
            "'{}', 0)",
            (run_id, json.dumps(config, allow_nan=False), source, owner, now, now),
        )
        record = self.get_run(run_id)
        assert record is not None
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        row = (
            self._connection()
            .execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        return _row_to_record(row) if row else None

    def list_runs(self, limit: int, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        query, params = f"SELECT {_RUN_COLUMNS} FROM runs", []
        if statuses is not None:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params.extend(statuses)
        query += " ORDER BY created_at DESC, id LIMIT ?"
        rows = self._connection().execute(query, (*params, limit)).fetchall()
        return [_row_to_record(row) for row in rows]

    def record(self, run_id: str, events: Sequence[dict[str, Any]],
               changes: RunChanges | None = None) -> list[StoredEvent]:  # fmt: skip
        changes = changes or RunChanges()
        connection = self._connection()
        encoded = [(str(event["kind"]), encode_event(event)) for event in events]
        connection.execute("BEGIN IMMEDIATE")  # the write lock first: ids cannot collide
        try:
            row = connection.execute(
                "SELECT last_event_id, summary, status FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise KeyError(run_id)
            planned = _next_events(row, encoded, changes)
            if planned is None:
                connection.execute("ROLLBACK")
                return []
            stored, values = planned
            connection.executemany(
                "INSERT INTO events (run_id, event_id, kind, data) VALUES (?, ?, ?, ?)",
                [(run_id, e.event_id, e.kind, e.data) for e in stored],
            )
            connection.execute(
                "UPDATE runs SET last_event_id = ?, updated_at = ?, summary = ?, "
                "status = COALESCE(?, status), error = COALESCE(?, error), "
                "checkpoint = COALESCE(?, checkpoint) WHERE id = ?",
                (*values, run_id),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return stored

    def events_after(self, run_id: str, after: int, limit: int,
                     kinds: Sequence[str] | None = None) -> list[StoredEvent]:  # fmt: skip
        query = "SELECT event_id, kind, data FROM events WHERE run_id = ? AND event_id > ?"
        params: list[Any] = [run_id, after]
        if kinds is not None:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        rows = (
            self._connection()
            .execute(query + " ORDER BY event_id LIMIT ?", (*params, limit))
            .fetchall()
        )
        return [StoredEvent(*row) for row in rows]

    def set_run_token(self, run_id: str, digest: str) -> None:
        self._connection().execute(
            "INSERT INTO run_tokens (run_id, digest) VALUES (?, ?)", (run_id, digest)
        )

    def run_token(self, run_id: str) -> str | None:
        row = (
            self._connection()
            .execute("SELECT digest FROM run_tokens WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return row[0] if row else None

    def beat(self, run_ids: Sequence[str], at: float) -> None:
        if not run_ids:
            return
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(HEARTBEAT_UPSERT.replace("%s", "?"),
                                   [(run_id, at) for run_id in run_ids])  # fmt: skip
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def delete_run(self, run_id: str) -> bool:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM run_heartbeats WHERE run_id = ?", (run_id,))
            gone = connection.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
            connection.execute("COMMIT")  # events and token go with the run (ON DELETE CASCADE)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return gone > 0

    def last_beats(self, run_ids: Sequence[str]) -> dict[str, float]:
        if not run_ids:
            return {}
        rows = (
            self._connection()
            .execute(f"SELECT run_id, beat_at FROM run_heartbeats WHERE run_id IN "
                     f"({', '.join('?' * len(run_ids))})", tuple(run_ids))  # fmt: skip
            .fetchall()
        )
        return dict(rows)

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            for connection in self._all.values():
                connection.close()
            self._all.clear()
