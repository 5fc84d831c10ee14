"""Pause, resume and stop for a run that another server worker drives.

With several server workers (`cnnviz serve --workers N` on PostgreSQL) a run's training process
hangs off the worker that started it, but a control request can reach any worker. A worker that
does not drive the run leaves the word in the shared database (`RunCommands.send_command`); the
driving worker's relay thread wakes on the notification, takes its words and applies them as if
they had been asked of it directly. The answer to the request is the run as it is now; the
`paused`, `resumed` or `end` event that follows confirms it, as for a local run.

Viewers need nothing of this: a worker that does not drive a run follows its events in the
database (`app.runs.stream`, every `run_poll_seconds`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.runs.owners import owner_alive
from app.runs.store import RunCommands, RunRecord, RunStore

__all__ = ["CONTROL_WORDS", "CommandRelay", "RemoteRun", "remote_run", "start_relay"]

log = logging.getLogger(__name__)

CONTROL_WORDS = ("pause", "resume", "stop")


class RemoteRun:
    """A run driven by another server worker, told what to do through the database."""

    def __init__(self, store: RunCommands, record: RunRecord) -> None:
        self._store = store
        self._record = record

    def tell(self, word: str) -> None:
        self._store.send_command(self._record.owner, self._record.id, word)


def remote_run(store: RunStore, record: RunRecord, own: str, action: str) -> RemoteRun | None:
    """The run as a `RemoteRun` when `action` can be passed on to the worker driving it: a
    server worker (not a `cnnviz train` process, which listens to nobody), still alive, of a
    store that carries commands; a queued run can only be stopped. None otherwise."""
    if (
        action not in CONTROL_WORDS
        or not isinstance(store, RunCommands)
        or record.finished
        or record.source != "web"
        or record.owner == own
        or (record.status == "queued" and action != "stop")
        or not owner_alive(record.owner)
    ):
        return None
    return RemoteRun(store, record)


class CommandRelay:
    """The thread that applies words other workers left for `owner` (`obey(run_id, word)`)."""

    def __init__(self, store: RunCommands, owner: str, obey: Callable[[str, str], None],
                 wait_seconds: float = 1.0) -> None:  # fmt: skip
        self._store = store
        self._owner = owner
        self._obey = obey
        self._wait_seconds = wait_seconds  # a poll even without notification (lost ones)
        self._stopped = threading.Event()
        self._waiter = store.command_waiter(owner)  # listening before the first look
        self._thread = threading.Thread(target=self._loop, name="run-commands", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                for run_id, word in self._store.take_commands(self._owner):
                    if word in CONTROL_WORDS:  # never anything else from the database
                        self._obey(run_id, word)
                self._waiter.wait(self._wait_seconds)
            except Exception:  # the database away, a run gone: keep relaying
                if self._stopped.is_set():
                    return
                log.exception("run commands: relay failed; retrying")
                self._stopped.wait(self._wait_seconds)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * self._wait_seconds + 1)
        self._waiter.close()


def start_relay(store: RunStore, owner: str,
                obey: Callable[[str, str], None]) -> CommandRelay | None:  # fmt: skip
    """A relay for a store that carries commands (PostgreSQL); None for one that does not
    (SQLite: one server worker drives every run it can control)."""
    if not isinstance(store, RunCommands):
        return None
    return CommandRelay(store, owner, obey)
