"""What a training worker process runs (and `cnnviz train`, in its own process).

`execute_run` drives a `Trainer` and adds what only a run has: a wall-clock `time` on every
event (for step-to-viewer latency and the page's clock) and the worker's CPU seconds `cpu_s`
(what training costs, whatever else the machine runs), and checkpoints — one per epoch (the
newest `keep_checkpoints` kept) and a final one — each announced by a `checkpoint` event. The
final checkpoint is written *before* the trainer's `end` event is passed on, so `end` is truly
the last event of a run.

`worker_main` is the worker process's entry point: events go to the server through a pipe, and
"pause", "resume" and "stop" come back through it, read before every step (`Control`); a
thread started first of all (before torch is set up and the dataset is loaded: seconds on a
busy machine) sends a heartbeat through it at once and then every `spec.beat_seconds`
(`app.runs.liveness`). An
exception becomes an `end` event with reason `failed` and the message; a worker that dies
without sending `end` (killed, out of memory) is noticed by the manager instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.runs.explain import explanation
from app.runs.spec import CHECKPOINT_FILE, FINAL_CHECKPOINT, RunSpec, epoch_checkpoint
from app.runs.uploaded_source import load_uploaded_source
from cnncore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from cnncore.data import load_dataset
from cnncore.errors import CNNCoreError
from cnncore.onnx_import import OnnxLimits
from cnncore.training import TrainConfig, Trainer
from cnncore.transfer import transfer_data, transfer_model
from cnncore.transfer_sources import load_weights_source, weights_source

__all__ = ["Control", "build_trainer", "execute_run", "failure_event", "worker_main"]


def build_trainer(
    spec: RunSpec, should_pause: Callable[[], bool], should_stop: Callable[[], bool]
) -> Trainer:
    """The spec's trainer; for a transfer run, the source network re-headed and frozen."""
    config = TrainConfig.from_dict(spec.config)
    if spec.source_checkpoint is None and spec.source_weights is None:
        return Trainer(config, should_stop=should_stop, should_pause=should_pause)
    checkpoint = source_checkpoint(spec)  # first: an uploaded source registers its name
    config.check()
    trained = checkpoint.trained
    data = transfer_data(load_dataset(config.data), trained.input_shape, config.data.fit,
                         (trained.mean, trained.std))  # fmt: skip
    model = transfer_model(checkpoint, data.num_classes, freeze=list(spec.freeze),
                           replace_head=spec.replace_head, seed=config.seed)  # fmt: skip
    return Trainer(config, data=data, model=model, should_stop=should_stop,
                   should_pause=should_pause)  # fmt: skip


def source_checkpoint(spec: RunSpec) -> Checkpoint:
    """A transfer run's source network: a run's checkpoint, bundled or ImageNet weights, or an
    uploaded model (its stored file read and converted again here: never a pickled module)."""
    if spec.source_checkpoint is not None:
        return load_checkpoint(spec.source_checkpoint)
    kind, model, file = spec.source_weights
    if kind == "uploaded":
        return load_uploaded_source(file, spec.source_limits or OnnxLimits())
    folder = Path(file).parent
    return load_weights_source(weights_source(kind, model, imagenet_dir=folder, bundled_dir=folder))


def _save(trainer: Trainer, folder: Path, name: str, run_id: str) -> Path:
    """Write atomically: a viewer listing checkpoints never sees half a file."""
    partial = folder / f".{name}.partial"
    save_checkpoint(trainer, partial, extra={"run_id": run_id})
    os.replace(partial, folder / name)
    return folder / name


def _prune(folder: Path, keep: int) -> None:
    epochs = sorted(p for p in folder.glob("epoch-*.safetensors") if CHECKPOINT_FILE.match(p.name))
    for old in epochs[: max(0, len(epochs) - keep)]:
        old.unlink(missing_ok=True)


def _checkpoint_event(path: Path, trainer: Trainer, final: bool) -> dict[str, Any]:
    return {"kind": "checkpoint", "file": path.name, "final": final,
            "epoch": trainer.epochs_completed, "step": trainer.step,
            "bytes": path.stat().st_size, "time": time.time()}  # fmt: skip


def execute_run(
    spec: RunSpec,
    should_pause: Callable[[], bool] = lambda: False,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """The run's events, checkpoints written on the way; ends with the trainer's `end`."""
    folder = Path(spec.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(spec, should_pause, should_stop)
    for event in trainer.run():
        event["time"] = time.time()
        event["cpu_s"] = time.process_time()  # the worker's CPU seconds: cost under any load
        kind = event["kind"]
        if kind == "diverged" and event.get("diagnosis"):  # why, in words, for every viewer
            event["explanation"] = explanation(event["diagnosis"])
        if kind == "end":
            # A diverged network's weights hold NaN: its last good epoch stays the newest.
            if event["reason"] != "diverged":
                yield _checkpoint_event(_save(trainer, folder, FINAL_CHECKPOINT, spec.run_id),
                                        trainer, final=True)  # fmt: skip
            yield {**event, "time": time.time()}
            return
        yield event
        if kind == "epoch":
            path = _save(trainer, folder, epoch_checkpoint(event["epoch"]), spec.run_id)
            _prune(folder, spec.keep_checkpoints)
            yield _checkpoint_event(path, trainer, final=False)


def failure_event(exc: BaseException) -> dict[str, Any]:
    """The `end` of a run that raised: a student-readable message for our own errors, the
    exception's type and text otherwise (never a traceback: it names server paths)."""
    message = str(exc) if isinstance(exc, CNNCoreError) else f"{type(exc).__name__}: {exc}"
    return {"kind": "end", "reason": "failed", "error": message, "time": time.time()}


class Control:
    """The server's words, read without waiting whenever the trainer asks (before each step,
    and every pause_poll_s while paused). A closed pipe means the server is gone: stop."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.paused = False
        self.stopped = False

    def _read(self) -> None:
        try:
            while self.conn.poll():
                word = self.conn.recv()
                self.paused = {"pause": True, "resume": False}.get(word, self.paused)
                self.stopped = self.stopped or word == "stop"
        except (EOFError, OSError):
            self.stopped = True

    def should_pause(self) -> bool:
        self._read()
        return self.paused

    def should_stop(self) -> bool:
        self._read()
        return self.stopped


class _Beats:
    """A thread of the worker sending {"kind": "beat"} every `every` seconds, so the server
    tells a long step (beats go on: torch releases the GIL while it computes) from a frozen
    or stopped process (they stop). Sends share a lock with the events: one pipe, two
    threads."""

    def __init__(self, conn, every: float) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every,), daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.conn.send(event)

    def _loop(self, every: float) -> None:
        while True:  # the first beat at once: the server learns the process has started
            try:
                self.send({"kind": "beat"})
            except OSError:  # the server is gone
                return
            if self._done.wait(every):
                return

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def worker_main(spec: RunSpec, conn, threads: int) -> None:
    """Entry point of a worker process."""
    beats = _Beats(conn, spec.beat_seconds)  # first: the server hears from us from now on
    # Ctrl-C in the server's terminal reaches the whole process group; the server decides
    # what happens to its runs (they are marked interrupted), so the worker ignores it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(max(1, threads))
        control = Control(conn)
        for event in execute_run(spec, control.should_pause, control.should_stop):
            beats.send(event)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server is gone (shut down or killed): nobody is left to tell
    except Exception as exc:  # any failure must reach the run's record
        traceback.print_exc(file=sys.stderr)
        with contextlib.suppress(OSError):  # the server is gone: nobody is left to tell
            beats.send(failure_event(exc))
    finally:
        beats.close()
        conn.close()
