"""Run records and event histories in PostgreSQL: the store several server workers (or hosts)
share (`CNNVIZ_DATABASE_URL=postgresql://…`).

Same tables and meaning as `app.runs.store.SQLiteRunStore` (see there): JSON kept as text, so
what is stored is byte for byte what viewers are sent. Event ids are assigned under a row lock
on the run (`SELECT … FOR UPDATE`; PostgreSQL manual, "Explicit Locking", row-level locks), so
appends to one run from any number of processes get unique, contiguous ids.

One more table, `run_commands`: pause, resume and stop for a run driven by another worker. The
sender inserts a row and raises `NOTIFY` (PostgreSQL manual, "NOTIFY"); the driving worker
`LISTEN`s, wakes, and takes its rows (`app.runs.remote`). The row makes the word survive a
listener that was reconnecting when the notification went out (it is found at the next poll).

Connections come from a small bounded pool: the server reads from many threads at once (every
SSE viewer's catch-up runs in a worker thread), and a connection per thread would exhaust the
server's `max_connections` with a few workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq

from app.runs.store import (
    _RUN_COLUMNS,
    HEARTBEAT_UPSERT,
    OWNER_TABLES,
    RUN_TABLES,
    RunChanges,
    RunRecord,
    StoredEvent,
    _next_events,
    _row_to_record,
    encode_event,
)

__all__ = ["CommandWaiter", "PostgresRunStore"]

log = logging.getLogger(__name__)

COMMANDS_CHANNEL = "cnnviz_run_commands"
_SCHEMA_LOCK = 0x636E6E76  # "cnnv": an advisory lock so workers starting together agree
_SCHEMA = (
    RUN_TABLES
    + """;
CREATE TABLE IF NOT EXISTS run_commands (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    word TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS run_commands_by_owner ON run_commands (owner);
"""
    + OWNER_TABLES
)
_CHECK_IDLE_SECONDS = 30.0  # a connection idle longer is checked before it is lent again
_STALE_COMMAND_SECONDS = 3600  # words nobody took within an hour: their owner is long gone


class _Pool:
    """At most `size` autocommit connections, lent one at a time (psycopg connections are
    thread-safe, but one transaction at a time each). One idle for a while is checked before
    it is lent again: the server may have restarted, or a firewall dropped it, meanwhile."""

    def __init__(self, url: str, size: int, timeout: float) -> None:
        self._url = url
        self._size = size
        self._timeout = timeout
        self._idle: list[tuple[psycopg.Connection, float]] = []  # and when it was given back
        self._lent = 0
        self._cond = threading.Condition()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    def _acquire(self) -> psycopg.Connection:
        with self._cond:
            ready = lambda: self._closed or self._idle or self._lent < self._size  # noqa: E731
            if not self._cond.wait_for(ready, timeout=self._timeout):
                raise TimeoutError(f"no database connection free within {self._timeout} s")
            if self._closed:
                raise RuntimeError("the run store is closed")
            self._lent += 1
            reused, since = self._idle.pop() if self._idle else (None, 0.0)
        if reused is not None:
            if time.monotonic() - since < _CHECK_IDLE_SECONDS:
                return reused
            try:
                reused.execute("SELECT 1")
                return reused
            except psycopg.Error:
                reused.close()  # a new one instead
        try:
            return psycopg.connect(self._url, autocommit=True)
        except BaseException:
            with self._cond:
                self._lent -= 1
                self._cond.notify()
            raise

    def _release(self, connection: psycopg.Connection) -> None:
        healthy = (not connection.closed and not connection.broken
                   and connection.info.transaction_status == pq.TransactionStatus.IDLE)  # fmt: skip
        with self._cond:
            self._lent -= 1
            if healthy and not self._closed:
                self._idle.append((connection, time.monotonic()))
                connection = None
            self._cond.notify()
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for connection, _ in idle:
            connection.close()


class PostgresRunStore:
    """`RunStore` (plus the run commands of `app.runs.store.RunCommands`) on a PostgreSQL
    database; safe from any thread and any number of processes."""

    def __init__(self, url: str, pool_size: int = 8, pool_timeout: float = 30.0) -> None:
        self.url = url
        self._pool = _Pool(url, pool_size, pool_timeout)
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(_SCHEMA)

    def create_run(self, run_id: str, config: dict[str, Any], source: str,
                   owner: str) -> RunRecord:  # fmt: skip
        now = time.time()
        with self._pool.connection() as connection:
            row = connection.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (%s, %s, 'queued', %s, %s, %s, %s, "
                f"NULL, NULL, '{{}}', 0) RETURNING {_RUN_COLUMNS}",
                (run_id, json.dumps(config, allow_nan=False), source, owner, now, now),
            ).fetchone()
        return _row_to_record(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._pool.connection() as connection:
            row = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)
            ).fetchone()
        return _row_to_record(row) if row else None

    def list_runs(self, limit: int, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        query, params = f"SELECT {_RUN_COLUMNS} FROM runs", []
        if statuses is not None:
            query += " WHERE status = ANY(%s)"
            params.append(list(statuses))
        query += " ORDER BY created_at DESC, id LIMIT %s"
        with self._pool.connection() as connection:
            rows = connection.execute(query, (*params, limit)).fetchall()
        return [_row_to_record(row) for row in rows]

    def record(self, run_id: str, events: Sequence[dict[str, Any]],
               changes: RunChanges | None = None) -> list[StoredEvent]:  # fmt: skip
        changes = changes or RunChanges()
        encoded = [(str(event["kind"]), encode_event(event)) for event in events]
        with self._pool.connection() as connection, connection.transaction():
            row = connection.execute(
                "SELECT last_event_id, summary, status FROM runs WHERE id = %s FOR UPDATE",
                (run_id,),
            ).fetchone()
            if row is None:
                raise KeyError(run_id)
            planned = _next_events(row, encoded, changes)
            if planned is None:
                return []
            stored, values = planned
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO events (run_id, event_id, kind, data) VALUES (%s, %s, %s, %s)",
                    [(run_id, e.event_id, e.kind, e.data) for e in stored],
                )
            connection.execute(
                "UPDATE runs SET last_event_id = %s, updated_at = %s, summary = %s, "
                "status = COALESCE(%s, status), error = COALESCE(%s, error), "
                "checkpoint = COALESCE(%s, checkpoint) WHERE id = %s",
                (*values, run_id),
            )
        return stored

    def events_after(self, run_id: str, after: int, limit: int,
                     kinds: Sequence[str] | None = None) -> list[StoredEvent]:  # fmt: skip
        query = "SELECT event_id, kind, data FROM events WHERE run_id = %s AND event_id > %s"
        params: list[Any] = [run_id, after]
        if kinds is not None:
            query += " AND kind = ANY(%s)"
            params.append(list(kinds))
        with self._pool.connection() as connection:
            rows = connection.execute(query + " ORDER BY event_id LIMIT %s",
                                      (*params, limit)).fetchall()  # fmt: skip
        return [StoredEvent(*row) for row in rows]

    def set_run_token(self, run_id: str, digest: str) -> None:
        with self._pool.connection() as connection:
            connection.execute(
                "INSERT INTO run_tokens (run_id, digest) VALUES (%s, %s)", (run_id, digest)
            )

    def run_token(self, run_id: str) -> str | None:
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT digest FROM run_tokens WHERE run_id = %s", (run_id,)
            ).fetchone()
        return row[0] if row else None

    def beat(self, run_ids: Sequence[str], at: float) -> None:
        if not run_ids:
            return
        with (self._pool.connection() as connection, connection.transaction(),
              connection.cursor() as cursor):  # fmt: skip
            cursor.executemany(HEARTBEAT_UPSERT, [(run_id, at) for run_id in run_ids])

    def delete_run(self, run_id: str) -> bool:
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("DELETE FROM run_heartbeats WHERE run_id = %s", (run_id,))
            gone = connection.execute("DELETE FROM runs WHERE id = %s", (run_id,)).rowcount
        return gone > 0  # events and token go with the run (ON DELETE CASCADE)

    def last_beats(self, run_ids: Sequence[str]) -> dict[str, float]:
        if not run_ids:
            return {}
        with self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT run_id, beat_at FROM run_heartbeats WHERE run_id = ANY(%s)",
                (list(run_ids),),
            ).fetchall()
        return dict(rows)

    # --- commands for runs driven by another process (app.runs.remote) ----------------------

    def send_command(self, owner: str, run_id: str, word: str) -> None:
        """Leave `word` for the process `owner` and wake it (the notification is sent when
        the row is committed, so the owner always finds the row)."""
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                "INSERT INTO run_commands (owner, run_id, word, created_at) "
                "VALUES (%s, %s, %s, %s)",
                (owner, run_id, word, time.time()),
            )
            connection.execute("SELECT pg_notify(%s, %s)", (COMMANDS_CHANNEL, owner))

    def take_commands(self, owner: str) -> list[tuple[str, str]]:
        """The words left for `owner` (run id, word), oldest first; each is taken once."""
        with self._pool.connection() as connection:
            rows = connection.execute(
                "DELETE FROM run_commands WHERE owner = %s OR created_at < %s "
                "RETURNING id, owner, run_id, word",
                (owner, time.time() - _STALE_COMMAND_SECONDS),
            ).fetchall()
        return [(run_id, word) for _, to, run_id, word in sorted(rows) if to == owner]

    def command_waiter(self, owner: str) -> CommandWaiter:
        return CommandWaiter(self.url, owner)

    def close(self) -> None:
        self._pool.close()


class CommandWaiter:
    """A LISTEN connection of its own: `wait` returns when a word for `owner` may be waiting
    (or after `timeout` seconds). Listening starts here, before the owner's first look at
    its rows, so no notification can fall between a look and a wait."""

    def __init__(self, url: str, owner: str) -> None:
        self._url = url
        self._owner = owner
        self._connection: psycopg.Connection | None = None
        self._connect()

    def _connect(self) -> None:
        connection = psycopg.connect(self._url, autocommit=True)
        connection.execute(f"LISTEN {COMMANDS_CHANNEL}")
        self._connection = connection

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            if self._connection is None or self._connection.closed:
                self._connect()
            assert self._connection is not None
            while (left := deadline - time.monotonic()) > 0:
                for notice in self._connection.notifies(timeout=left, stop_after=1):
                    if notice.payload == self._owner:
                        return
        except psycopg.Error as exc:
            # The database went away: the caller polls its rows after the timeout anyway.
            log.warning("run commands: listening failed (%s); retrying", exc)
            self.close()
            time.sleep(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
