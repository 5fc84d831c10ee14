"""Whether a run is still driven by a live process: heartbeats in the database.

A process id says nothing about another host or container, and a process that still exists
may be frozen. So whoever drives a run writes its heartbeat to the run store (table
`run_heartbeats`, SQLite and PostgreSQL alike) every `run_heartbeat_seconds`: the server's run
manager for its queued runs and for each worker that still answers (a worker sends a beat
through its pipe from a thread of its own, so a long step keeps beating while a frozen or
stopped process does not), and `cnnviz train` for its own run. Anyone reading the store — any
server process, on any host — treats a run whose last beat is older than
`run_dead_after_seconds` as abandoned and marks it interrupted (`RunManager.abandon_if_orphaned`).
A run with no beat at all (recorded before heartbeats existed) falls back to the process-id check
of `app.runs.owners`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from app.runs.store import RunRecord, RunStore

__all__ = ["Heartbeat", "silence"]

log = logging.getLogger(__name__)


def silence(store: RunStore, record: RunRecord, dead_after: float,
            now: float | None = None) -> float | None:  # fmt: skip
    """Seconds since the run's last heartbeat when that is longer than `dead_after`, else None
    (alive, or never beaten: then the caller decides by process id)."""
    last = store.last_beats([record.id]).get(record.id)
    if last is None:
        return None
    quiet = (time.time() if now is None else now) - last
    return quiet if quiet > dead_after else None


class Heartbeat:
    """A daemon thread writing the beats of `run_ids()` every `every` seconds, then calling
    `after_beat()` (the manager looks for frozen workers and abandoned runs there)."""

    def __init__(
        self, store: RunStore, run_ids: Callable[[], Iterable[str]], every: float,
        after_beat: Callable[[], None] | None = None, name: str = "run-heartbeat",
    ) -> None:  # fmt: skip
        self.store = store
        self.run_ids = run_ids
        self.every = every
        self.after_beat = after_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def beat_now(self) -> None:
        ids = list(self.run_ids())
        self.store.beat(ids, time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat_now()
                if self.after_beat is not None:
                    self.after_beat()
            except Exception:  # a database hiccup must not end the heartbeat for good
                log.exception("run heartbeat failed; trying again in %s s", self.every)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=5)
