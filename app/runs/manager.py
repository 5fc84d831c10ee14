"""The run manager: starts training runs in worker processes, records and streams their events.

- At most `max_concurrent` workers train at once; later runs wait in a FIFO queue (bounded by
  `max_queued`, beyond which a new run is refused).
- Each run gets its own process, never forked from the server itself (multiprocessing's
  *forkserver* context by default, *spawn* by setting: no state copied from the server's
  threads or event loop), so training never blocks the API and a crash takes down one run only.
- Events come back through a pipe. A pump thread per worker stores them (several at a time, one
  transaction) and then pushes them to the live viewers (`app.runs.stream`).
- Pause, resume and stop travel the other way through the same pipe, as words the worker reads
  before each step.
- A worker whose pipe closes without an `end` event died (killed, out of memory, a crash in
  native code): the run is marked failed with the exit code or signal as the reason.
- A new manager marks interrupted every run whose owning process is gone (`app.runs.owners`);
  closing a manager (server shutdown) marks its own unfinished runs interrupted.
- Liveness is a heartbeat in the store (`app.runs.liveness`): the manager beats for its queued
  runs and for each worker that still sends its own beats; a worker silent for
  `dead_after_seconds` (frozen) is killed and its run interrupted, and a run of any other
  process, on any host, whose beats stopped is marked interrupted too. Until a worker's first
  message (its process is still starting: the forkserver importing torch, a loaded machine)
  it is judged by the longer `start_seconds` instead, counted from its process's start; a
  worker that exits meanwhile is noticed at once all the same (its pipe closes).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import multiprocessing
import multiprocessing.forkserver
import secrets
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.runs.history import record_events
from app.runs.liveness import Heartbeat, silence
from app.runs.owners import HOST, claim_owner, owner_alive, owner_pid, release_owner
from app.runs.remote import RemoteRun, remote_run, start_relay
from app.runs.spec import CHECKPOINT_FILE, FINAL_CHECKPOINT, RunSpec, newest_checkpoint
from app.runs.store import ACTIVE_STATUSES, RunRecord, RunStore, StoredEvent, open_run_store
from app.runs.stream import RunChannel, RunSubscription
from app.runs.worker import worker_main
from app.settings import Settings, get_settings
from app.uploaded_models import onnx_limits
from cnncore.checkpoint import read_checkpoint_info
from cnncore.errors import CNNCoreError
from cnncore.onnx_import import OnnxLimits
from cnncore.training import TrainConfig

__all__ = [
    "CheckpointInfo",
    "QueueFull",
    "RunConflict",
    "RunError",
    "RunLimits",
    "RunManager",
    "UnknownRun",
    "checkpoint_for_run",
    "exit_reason",
    "get_run_manager",
    "new_run_id",
    "open_store",
    "use_run_manager",
]

log = logging.getLogger("uvicorn.error")  # next to the storage faults of requests (app.errors)
_BATCH = 256  # events stored in one transaction at most


class RunError(Exception):
    """A run request that cannot be served; `status_code` shapes the HTTP answer."""

    status_code = 400


class UnknownRun(RunError, LookupError):
    status_code = 404


class RunConflict(RunError):
    status_code = 409


class QueueFull(RunError):
    status_code = 503


@dataclass(frozen=True)
class RunLimits:
    max_concurrent: int = 2
    max_queued: int = 16
    threads: int = 1
    keep_checkpoints: int = 3
    replay_batch: int = 1000
    poll_seconds: float = 0.5
    mailbox_frames: int = 4096  # per viewer; a slower viewer catches up from the database
    start_method: str = "forkserver"  # or "spawn" (see Settings.run_start_method)
    batch_seconds: float = 0.05  # events arriving this close together travel together
    stop_grace_seconds: float = 30.0  # a worker still running this long after a stop is killed
    heartbeat_seconds: float = 5.0  # how often runs' heartbeats are written
    dead_after_seconds: float = 60.0  # a run (or worker) silent this long is taken for dead
    start_seconds: float = 300.0  # a worker not heard from yet gets this long to start
    onnx: OnnxLimits = OnnxLimits()  # an uploaded source is converted again within them

    @classmethod
    def from_settings(cls, settings: Settings) -> RunLimits:
        return cls(
            max_concurrent=settings.max_concurrent_runs,
            max_queued=settings.max_queued_runs,
            threads=settings.run_threads,
            keep_checkpoints=settings.run_checkpoints_kept,
            replay_batch=settings.run_replay_batch,
            poll_seconds=settings.run_poll_seconds,
            start_method=settings.run_start_method,
            stop_grace_seconds=settings.run_stop_grace_seconds,
            heartbeat_seconds=settings.run_heartbeat_seconds,
            dead_after_seconds=settings.run_dead_after_seconds,
            start_seconds=settings.run_start_seconds,
            onnx=onnx_limits(settings),
        )


def new_run_id() -> str:
    return secrets.token_hex(6)  # 12 hex digits: RUN_ID_PATTERN


def exit_reason(exitcode: int | None) -> str:
    """Why a worker process ended without finishing its run, in words."""
    if exitcode is None:
        return "the training process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the training process was killed ({name}) before the run finished"
    return f"the training process exited with code {exitcode} before the run finished"


def _worker_context(method: str):
    """Never plain fork: forking a server with threads and an event loop copies locks held
    by other threads. The forkserver is a fresh single-threaded process that imports the
    worker module (torch included) once; each run is forked from it."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["app.runs.preload"])
    return context


def _warm_up(method: str) -> None:
    """What the first run would otherwise wait for (seconds each on a busy machine): the
    forkserver with torch and the datasets, and in this process the lazy imports of the
    first optimiser (`plan_run` checks a config by building one)."""
    if method == "forkserver":
        multiprocessing.forkserver.ensure_running()
    TrainConfig().check()


def _end(reason: str, error: str | None = None) -> dict[str, Any]:
    return {"kind": "end", "reason": reason, "error": error, "time": time.time()}


@dataclass(frozen=True)
class CheckpointInfo:
    file: str  # a server-made name (CHECKPOINT_FILE) inside the run's own folder
    bytes: int
    final: bool
    epoch: int
    step: int
    val_accuracy: float | None  # of the saved weights, on the run's validation split


@dataclass
class _Worker:
    run_id: str
    process: Any  # multiprocessing.Process (forkserver or spawn context)
    conn: Any  # the server's end of the pipe: events in, control words out
    thread: threading.Thread | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    interrupted: bool = False  # the manager is closing: this run ends as interrupted
    stop_forced: bool = False  # killed after a stop it did not obey in time: ends as stopped
    frozen: bool = False  # killed after sending nothing, not even beats, for too long
    last_seen: float = field(default_factory=time.monotonic)  # its start, last message or beat
    heard: bool = False  # it has sent a message (until then it is still starting)
    ended: bool = field(default=False)
    last_id: int = 0  # the id of its newest stored event (an unstored end follows on from it)

    def tell(self, word: str) -> None:
        """Send "pause", "resume" or "stop"; a worker that is gone is the pump's business."""
        with self.send_lock, contextlib.suppress(OSError):
            self.conn.send(word)


class RunManager:
    """Every run this process drives. Thread-safe; `subscribe` must run on an event loop."""

    def __init__(
        self,
        store: RunStore,
        checkpoints_dir: Path,
        limits: RunLimits | None = None,
        context: Any = None,
        target: Callable[..., None] = worker_main,
    ) -> None:
        self.store = store
        self.checkpoints_dir = Path(checkpoints_dir)
        self.limits = limits or RunLimits()
        self.owner = claim_owner()
        self._context = context or _worker_context(self.limits.start_method)
        self._target = target  # what a worker process runs (tests: a worker that hangs)
        self._lock = threading.RLock()
        self._workers: dict[str, _Worker] = {}
        self._queue: deque[str] = deque()
        self._channels: dict[str, RunChannel] = {}
        self._closed = False
        # Ends that could not be stored (the database failed while the run trained), by run:
        # stored by `recover` once the database works again, so no run stays "running".
        self._unrecorded: dict[str, dict[str, Any]] = {}
        self.recovered = self.recover()
        self._heartbeat = Heartbeat(store, self._live_runs, self.limits.heartbeat_seconds,
                                    self._after_beat, name="runs-heartbeat")  # fmt: skip
        # Several server workers on one database: words for our runs sent to another worker
        # reach us through it (app.runs.remote); None with SQLite.
        self._relay = start_relay(store, self.owner, self._obey)
        self._warming = threading.Lock()  # held for good once the warm-up has started

    def warm_up_soon(self) -> None:
        """Start the first run's warm-up in the background, once: asked when a page that starts
        runs (/train, /teach) is opened, so by the time a teacher presses Start the run begins
        at once. Not when the manager is made: /features lists runs too, and a cold server's
        first feature maps then waited on the forkserver importing torch and the datasets
        (measured at load 19–22: 1.3–2.5 s → 4.8–5.7 s)."""
        if self._warming.acquire(blocking=False):
            threading.Thread(target=_warm_up, args=(self.limits.start_method,),
                             name="runs-warm-up", daemon=True).start()  # fmt: skip

    # --- records ---------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise UnknownRun(f"no training run has the id {run_id!r}")
        return record

    def _deliver(self, run_id: str, events: list[dict[str, Any]]) -> list[StoredEvent]:
        """Store first (viewers fill gaps from the store), then push to live viewers."""
        stored = record_events(self.store, run_id, events)
        channel = self._channels.get(run_id)
        if channel is not None:
            channel.publish(stored)
        return stored

    def abandon_if_orphaned(self, record: RunRecord) -> bool:
        """Mark a run interrupted when the process that drove it is gone (its process id, on
        this host) or silent (no heartbeat for `dead_after_seconds`, on any host); True if
        it was."""
        if record.finished or record.owner == self.owner:
            return False
        quiet = silence(self.store, record, self.limits.dead_after_seconds)
        if quiet is not None:
            host = record.owner.split("|")[0]
            reason = (f"no heartbeat for {quiet:.0f} s from the process driving this run "
                      f"(on {host}): it died or froze")  # fmt: skip
        elif not owner_alive(record.owner):
            reason = f"the process driving this run (pid {owner_pid(record.owner)}) is gone"
        else:
            return False
        self._deliver(record.id, [_end("interrupted", reason)])
        return True

    # --- heartbeats ------------------------------------------------------------------------

    def _silent(self, worker: _Worker, now: float) -> bool:
        """Whether a worker has been quiet too long: `dead_after_seconds` since its last
        message, or `start_seconds` since its process started while it has sent none."""
        allowed = self.limits.dead_after_seconds if worker.heard else self.limits.start_seconds
        return now - worker.last_seen >= allowed

    def _live_runs(self) -> list[str]:
        """Our runs that are alive: queued ones, those whose worker still beats, and those
        whose worker process is still starting (a busy machine can take minutes to bring up
        the forkserver): until its first message a worker is judged by its process and
        `start_seconds`."""
        with self._lock:
            now = time.monotonic()
            return [*self._queue, *(w.run_id for w in self._workers.values()
                                    if not w.ended and not self._silent(w, now)
                                    and (w.heard or w.process.is_alive()))]  # fmt: skip

    def _after_beat(self) -> None:
        """Kill workers that went silent (frozen), then look for others' abandoned runs."""
        with self._lock:
            now = time.monotonic()
            silent = [w for w in self._workers.values()
                      if not w.ended and not w.frozen and self._silent(w, now)]  # fmt: skip
            for worker in silent:
                worker.frozen = True
        for worker in silent:
            worker.process.kill()  # the pump ends its run as interrupted
        self.recover()

    def recover(self) -> list[str]:
        """Runs left queued, running or paused by a process that no longer exists, and our
        own runs whose end could not be stored when they ended."""
        for run_id, end in list(self._unrecorded.items()):
            try:
                self._deliver(run_id, [end])
            except Exception:  # still failing: tried again after the next heartbeat
                continue
            self._unrecorded.pop(run_id, None)
        stale = self.store.list_runs(1_000_000, statuses=ACTIVE_STATUSES)
        return [r.id for r in stale if self.abandon_if_orphaned(r)]

    # --- starting runs ---------------------------------------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints_dir / run_id  # run ids are made by new_run_id, never by users

    def checkpoint_for_run(self, run_id: str) -> Path:
        """The newest checkpoint of a run (its final one once it has finished)."""
        try:
            return newest_checkpoint(self.store, self.checkpoints_dir, run_id)
        except LookupError as exc:
            raise UnknownRun(str(exc)) from exc

    def list_checkpoints(self, run_id: str) -> list[CheckpointInfo]:
        """A run's checkpoint files, oldest first (the final one last)."""
        self.get(run_id)
        folder = self.checkpoint_dir(run_id)
        files = sorted(p for p in folder.glob("*.safetensors") if CHECKPOINT_FILE.match(p.name))
        files.sort(key=lambda p: p.name == FINAL_CHECKPOINT)  # stable: epochs, then final
        found = []
        for path in files:
            try:
                _, trained, progress = read_checkpoint_info(path)
                stat = path.stat()
            except (CNNCoreError, OSError):
                continue  # pruned or replaced while listing
            score = trained.score if math.isfinite(trained.score) else None
            found.append(CheckpointInfo(path.name, stat.st_size, path.name == FINAL_CHECKPOINT,
                                        int(progress.get("epoch") or 0),
                                        int(progress.get("step") or 0), score))  # fmt: skip
        return found

    def create(
        self, config: dict[str, Any], source: str = "web", token_digest: str | None = None
    ) -> RunRecord:
        """Record a new run (queued) and start it as soon as a worker slot is free;
        `token_digest` keeps who may control it (`app.runs.owners.token_digest`)."""
        with self._lock:
            if self._closed:
                raise QueueFull("the server is shutting down")
            free = self.limits.max_concurrent - len(self._workers)
            if free <= 0 and len(self._queue) >= self.limits.max_queued:
                raise QueueFull(f"{len(self._queue)} runs are already waiting; try again when "
                                "one has finished")  # fmt: skip
            run_id = new_run_id()
            self.store.create_run(run_id, config, source, self.owner)
            self.store.beat([run_id], time.time())
            if token_digest is not None:
                self.store.set_run_token(run_id, token_digest)
            self._channels[run_id] = RunChannel()
            self._deliver(run_id, [{"kind": "status", "status": "queued", "time": time.time()}])
            self._queue.append(run_id)
            self._schedule()
        return self.get(run_id)

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._workers) < self.limits.max_concurrent:
                self._start(self._queue.popleft())

    def _start(self, run_id: str) -> None:
        record = self.get(run_id)
        source = None
        init_from = record.config.get("init_from")
        if init_from and init_from.get("run_id"):
            try:
                source = self.checkpoint_for_run(init_from["run_id"])
            except UnknownRun as exc:
                self._finish_early(run_id, "failed", str(exc))
                return
        spec = RunSpec.of(run_id, record.config, self.checkpoint_dir(run_id), source,
                          self.limits.keep_checkpoints)  # fmt: skip
        spec = replace(spec, beat_seconds=self.limits.heartbeat_seconds,
                       source_limits=self.limits.onnx)  # fmt: skip
        mine, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=self._target, args=(spec, theirs, self.limits.threads),
            name=f"cnnviz-run-{run_id}", daemon=True,
        )  # fmt: skip
        worker = _Worker(run_id, process, mine)
        running = {"kind": "status", "status": "running", "time": time.time()}
        worker.last_id = self._deliver(run_id, [running])[-1].event_id
        try:
            process.start()
        except Exception as exc:  # no process: the run fails, the server lives
            mine.close()
            self._finish_early(run_id, "failed", f"no training process could start: {exc}")
            return
        finally:
            theirs.close()  # the worker holds the only other end: its death closes the pipe
        worker.last_seen = time.monotonic()  # its clock starts now, not before start() waited
        self._workers[run_id] = worker
        worker.thread = threading.Thread(target=self._pump, args=(worker,),
                                         name=f"run-pump-{run_id}", daemon=True)  # fmt: skip
        worker.thread.start()

    def _finish_early(self, run_id: str, reason: str, error: str | None = None) -> None:
        """End a run that never got a worker (stopped while queued, source gone, shutdown)."""
        self._deliver(run_id, [_end(reason, error)])
        self._channels.pop(run_id, None)

    # --- the pump: one thread per worker ---------------------------------------------------

    def _receive(self, conn) -> tuple[list[dict[str, Any]], bool]:
        """The next events: wait for one, then take whatever else arrives within
        `batch_seconds` (one transaction, one push, one write per viewer for all of them:
        with many viewers the server's work per step shrinks; the latency grows by at most
        that window). Returns the events and whether the pipe is still open."""
        events: list[dict[str, Any]] = []
        try:
            events.append(conn.recv())
            deadline = time.monotonic() + self.limits.batch_seconds
            while len(events) < _BATCH and events[-1].get("kind") != "end":
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    break
                events.append(conn.recv())
        except (EOFError, OSError):
            return events, False
        return events, True

    def _pump(self, worker: _Worker) -> None:
        try:
            self._pump_events(worker)
        except Exception as exc:  # the store failed: nothing the worker does can be kept
            self._end_unrecorded(worker, exc)
        finally:
            with self._lock:
                self._workers.pop(worker.run_id, None)
                self._channels.pop(worker.run_id, None)
                if not self._closed:
                    self._schedule()

    def _end_unrecorded(self, worker: _Worker, exc: Exception) -> None:
        """The run's events cannot be stored (its database deleted, replaced or unwritable):
        one log line, its process ended, its live viewers told it ended (a frame that follows
        on from the last stored event), and its end stored by `recover` once the database
        works again."""
        cause = str(exc) or type(exc).__name__
        log.error("run %s: its events cannot be stored (%s: %s); its training process is "
                  "being ended", worker.run_id, type(exc).__name__, cause)  # fmt: skip
        worker.ended = True
        worker.process.kill()
        with contextlib.suppress(OSError):
            worker.conn.close()
        worker.process.join(timeout=5)
        end = _end("interrupted", f"the runs database could not store this run's events "
                   f"({cause}); its training process was ended")  # fmt: skip
        self._unrecorded[worker.run_id] = end
        channel = self._channels.get(worker.run_id)
        if channel is not None:
            channel.publish([StoredEvent(worker.last_id + 1, "end", json.dumps(end))])

    def _pump_events(self, worker: _Worker) -> None:
        while not worker.ended:
            events, open_ = self._receive(worker.conn)
            if events:
                worker.last_seen, worker.heard = time.monotonic(), True
                events = [e for e in events if e.get("kind") != "beat"]  # liveness only
            if events:
                worker.last_id = self._deliver(worker.run_id, events)[-1].event_id
                worker.ended = any(e.get("kind") == "end" for e in events)
            if not open_:
                break
        worker.conn.close()
        worker.process.join(timeout=30)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        if not worker.ended:
            self._deliver(worker.run_id, [self._unended(worker)])

    def _unended(self, worker: _Worker) -> dict:
        """The end event of a worker that closed without sending one: why it ended."""
        limits = self.limits
        if worker.interrupted:
            return _end("interrupted", "the server stopped")
        if worker.frozen and not worker.heard:
            return _end("interrupted", f"the training process did not start (no heartbeat "
                        f"{limits.start_seconds:g} s after it was launched on {HOST}); "
                        "it was ended")  # fmt: skip
        if worker.frozen:
            return _end("interrupted", "the training process stopped answering (no heartbeat for "
                        f"{limits.dead_after_seconds:g} s on {HOST}); it was ended")  # fmt: skip
        if worker.stop_forced:
            return _end("stopped", f"the step under way was still running "
                        f"{limits.stop_grace_seconds:g} s after the stop; its process was "
                        "ended (the newest epoch checkpoint is kept)")  # fmt: skip
        return _end("failed", exit_reason(worker.process.exitcode))

    # --- control ---------------------------------------------------------------------------

    def _refuse(self, record: RunRecord, action: str) -> RunError:
        if record.finished:
            return RunConflict(f"the run has already ended ({record.status}); nothing to {action}")
        if record.id in self._queue or record.status == "queued":  # here or on another worker
            return RunConflict(f"the run is waiting for a free worker; it cannot {action} yet")
        return RunConflict(f"this run is driven by another process ({record.source}); "
                           f"{action} it there")  # fmt: skip

    def _worker(self, run_id: str, action: str) -> _Worker | RemoteRun:
        worker = self._workers.get(run_id)
        if worker is None or worker.ended:
            record = self.get(run_id)
            if self.abandon_if_orphaned(record):  # its driver died: ended now, as interrupted
                record = self.get(run_id)
            remote = remote_run(self.store, record, self.owner, action)
            if remote is None:
                raise self._refuse(record, action)
            return remote  # another server worker drives it: the word goes through the store
        return worker

    def _obey(self, run_id: str, word: str) -> None:
        """A word another server worker passed on for one of our runs."""
        with contextlib.suppress(RunError):  # ended (or gone) meanwhile: nothing to do
            getattr(self, word)(run_id)

    def pause(self, run_id: str) -> RunRecord:
        with self._lock:
            self._worker(run_id, "pause").tell("pause")
        return self.get(run_id)

    def resume(self, run_id: str) -> RunRecord:
        with self._lock:
            self._worker(run_id, "resume").tell("resume")
        return self.get(run_id)

    def stop(self, run_id: str) -> RunRecord:
        """Stop after the current step (the final checkpoint is still written). A worker still
        running `stop_grace_seconds` later (one step can take minutes, or the process froze)
        is killed, and the run ends as stopped all the same."""
        with self._lock:
            if run_id in self._queue:
                self._queue.remove(run_id)
                self._finish_early(run_id, "stopped")
            elif run_id not in self._workers and self.abandon_if_orphaned(self.get(run_id)):
                pass  # nobody drives it any more: it has just ended as interrupted
            else:
                worker = self._worker(run_id, "stop")
                worker.tell("stop")
                if isinstance(worker, _Worker):
                    self._arm_stop_timer(worker)
        return self.get(run_id)

    def _arm_stop_timer(self, worker: _Worker) -> None:
        def overdue() -> None:
            with self._lock:
                if worker.ended or not worker.process.is_alive():
                    return
                worker.stop_forced = True
            worker.process.kill()  # the pump sees the pipe close and ends the run as stopped

        timer = threading.Timer(self.limits.stop_grace_seconds, overdue)
        timer.daemon = True
        timer.start()

    def delete(self, run_id: str) -> None:
        """Remove a finished run: its record, history and checkpoints (a run still going must
        be stopped first)."""
        with self._lock:
            record = self.get(run_id)
            if not record.finished:
                raise RunConflict(f"the run is {record.status}; stop it before deleting it")
            self.store.delete_run(run_id)
        shutil.rmtree(self.checkpoint_dir(run_id), ignore_errors=True)

    def kill_worker(self, run_id: str) -> None:
        """Kill a run's process outright (SIGKILL), as a crash would; for tests and admins."""
        with self._lock:
            worker = self._workers.get(run_id)
        if worker is None:
            raise self._refuse(self.get(run_id), "kill")
        worker.process.kill()

    # --- viewers ---------------------------------------------------------------------------

    def subscribe(self, run_id: str, after: int | None) -> RunSubscription:
        """A viewer of the run from event `after` on (call on the viewer's event loop)."""
        self.get(run_id)
        with self._lock:
            channel = self._channels.get(run_id)
            return RunSubscription(
                self.store, run_id, after or 0, channel,
                replay_batch=self.limits.replay_batch, poll_seconds=self.limits.poll_seconds,
                mailbox_frames=self.limits.mailbox_frames,
                abandoned=self.abandon_if_orphaned,
            )  # fmt: skip

    def viewers(self, run_id: str) -> int:
        channel = self._channels.get(run_id)
        return len(channel) if channel else 0

    def active(self) -> dict[str, list[str]]:
        with self._lock:
            return {"running": list(self._workers), "queued": list(self._queue)}

    # --- shutdown --------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker; their runs (and queued ones) end as interrupted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued, self._queue = list(self._queue), deque()
            workers = list(self._workers.values())
        for run_id in queued:
            self._finish_early(run_id, "interrupted", "the server stopped before the run began")
        for worker in workers:
            worker.interrupted = True
            worker.process.terminate()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._relay is not None:
            self._relay.close()
        self._heartbeat.close()
        release_owner(self.owner)


# --- the server's manager ---------------------------------------------------------------------

_manager: RunManager | None = None
_manager_lock = threading.Lock()
_warm_when_made = False  # a page that starts runs was served before the manager was made


def open_store(settings: Settings) -> RunStore:
    """The configured run store (`app.runs.store.open_run_store`): SQLite under data_dir by
    default, PostgreSQL when database_url names one (several server workers)."""
    return open_run_store(settings.database_url, settings.sqlite_path,
                          settings.database_pool_size)  # fmt: skip


def get_run_manager() -> RunManager:
    """The process-wide manager, made on first use (which also marks runs abandoned by an
    earlier server process as interrupted); closed when the process exits."""
    global _manager
    with _manager_lock:
        if _manager is None:
            settings = get_settings()
            store = open_store(settings)
            _manager = RunManager(store, settings.checkpoints_dir,
                                  RunLimits.from_settings(settings))  # fmt: skip
            atexit.register(_close_manager, _manager)
            if _warm_when_made:
                _manager.warm_up_soon()
        return _manager


def warm_up_runs(override: Callable[[], RunManager] | None = None) -> None:
    """Start the first run's warm-up (a page that starts runs asks as it is served): at once
    when the manager exists, else as soon as it is made (the page's own /api/runs request makes
    it; nothing is opened here). `override`: the app's dependency override, whose manager is
    warmed in a background thread."""
    global _warm_when_made
    if override is not None:
        threading.Thread(target=lambda: override().warm_up_soon(), name="runs-warm-up-start",
                         daemon=True).start()  # fmt: skip
        return
    with _manager_lock:
        _warm_when_made = True
        if _manager is not None:
            _manager.warm_up_soon()


def use_run_manager(manager: RunManager | None) -> RunManager | None:
    """Make `manager` the process-wide one (None: made again from the settings on next use)
    and return the one it replaces: tests and embedders point every page at runs kept in a
    folder of their own, the pages that find checkpoints by run id (`checkpoint_for_run`)
    included."""
    global _manager
    with _manager_lock:
        previous, _manager = _manager, manager
    return previous


def _close_manager(manager: RunManager) -> None:
    manager.close()
    manager.store.close()


def checkpoint_for_run(run_id: str) -> Path:
    """The newest checkpoint file of a run (its final one once finished), for pages that show
    what a trained network sees (`cnncore.checkpoint.load_checkpoint(path).loaded_model()`).
    Raises `UnknownRun` (a LookupError) when the run or its checkpoint does not exist."""
    return get_run_manager().checkpoint_for_run(run_id)
