"""`cnnviz train`: one training run in this process, without the server, recorded in the same
SQLite history (so it appears in the web UI's run list, live while it trains: the server's
viewers re-read the database) with a progress bar on stderr.

The options are the API's own fields, validated by the same schema (`RunCreate`) and planned by
the same function (`plan_run`), so a config refused by the web form is refused here too, with
the same field named. Ctrl-C stops the run after the current step (the final checkpoint is still
written); a second Ctrl-C aborts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from app.runs.history import record_events
from app.runs.liveness import Heartbeat
from app.runs.manager import new_run_id, open_store
from app.runs.owners import claim_owner, release_owner
from app.runs.spec import RunSpec, newest_checkpoint, plan_run
from app.runs.store import RunStore, describe_database
from app.runs.worker import execute_run, failure_event
from app.schemas.runs import RunCreate
from app.settings import Settings
from cnncore.errors import CNNCoreError

__all__ = ["ProgressBar", "add_train_arguments", "train_command"]

FLUSH_SECONDS = 0.25  # step events are written in batches at most this far apart


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The most used fields as options; `--set field=value` (JSON values) reaches any other."""
    add = parser.add_argument
    add("--model", default="lenet5", help="zoo model (lenet5, mlp, tinyvgg, …)")
    add("--data", default="mnist5k", help="dataset (shapes, digits, mnist5k, …)")
    add("--epochs", type=int, default=3)
    add("--batch-size", type=int, default=64)
    add("--lr", type=float, default=1e-3, help="learning rate")
    add("--optimizer", default="adam", help="sgd, momentum, nesterov, rmsprop, adam, adamw")
    add("--activation", default=None, help="replace the model's activations (relu, sigmoid, …)")
    add("--batch-norm", action="store_true", help="add batch normalisation")
    add("--dropout", type=float, default=0.0)
    add("--init", default="default", help="default, xavier, he, normal, zeros")
    add("--seed", type=int, default=0)
    add("--limit", type=int, default=None, help="use at most this many images")
    add("--classes", type=_ints, default=None, help="keep these labels, e.g. 0,1,2,3,4")
    add("--train-per-class", type=int, default=None, help="few-shot: training images per class")
    add("--max-steps", type=int, default=None, help="cut each epoch to this many steps")
    add("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the setting)")
    add("--label", default="", help="a name for the run in lists and charts")
    add("--init-from", default=None, metavar="RUN_ID", help="transfer: start from this run")
    add("--freeze", type=_names, default=[], help="transfer: layer prefixes to freeze")
    add("--keep-head", action="store_true", help="transfer: keep the source's output layer")
    add(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help='any other field, e.g. --set schedule=\\"cosine\\" --set augment=\'{"shift":2}\'',
    )
    add("--quiet", action="store_true", help="no progress bar")
    add("--lang", choices=("en", "ko"), default="en", help="language of a failed run's diagnosis")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"name": args.data}
    for key in ("limit", "classes", "train_per_class"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    body: dict[str, Any] = {
        "label": args.label, "model": args.model, "data": data, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
        "activation": args.activation, "batch_norm": args.batch_norm, "dropout": args.dropout,
        "init": args.init, "seed": args.seed, "max_steps_per_epoch": args.max_steps,
        "device": args.device,
    }  # fmt: skip
    if args.init_from:
        body["init_from"] = {"run_id": args.init_from, "freeze": args.freeze,
                             "replace_head": not args.keep_head}  # fmt: skip
    for item in args.set:
        field, _, value = item.partition("=")
        try:
            body[field.strip()] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CNNCoreError(f"--set {field}: the value is not JSON ({exc.msg})", field) from exc
    return body


class ProgressBar:
    """One line on a terminal, redrawn in place (\\r): epoch, a bar, loss, accuracy, speed."""

    def __init__(self, out: TextIO, width: int = 28, lang: str = "en") -> None:
        self.out = out
        self.lang = lang
        self.width = width
        self.total_steps = 0
        self.epochs = 0
        self.interactive = out.isatty()
        self._last_draw = 0.0

    def update(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "start":
            self.total_steps, self.epochs = event["total_steps"], event["config"]["epochs"]
            self._line(
                f"training {event['model']['name']} on {event['dataset']['name']} "
                f"({event['model']['params']:,} parameters, {event['device']})",
                True,
            )
        elif kind == "step":
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or event["step"] == self.total_steps:
                self._last_draw = now
                self._line(self._step_text(event), False)
        elif kind == "epoch":
            self._line(f"epoch {event['epoch']}/{self.epochs}: train loss "
                       f"{_num(event['train_loss'])}, val loss {_num(event['val_loss'])}, "
                       f"val accuracy {_pct(event['val_accuracy'])}", True)  # fmt: skip
        elif kind in ("diverged", "early_stop", "paused", "resumed"):
            self._line(event.get("message") or kind.replace("_", " "), True)
            for line in event.get("explanation", {}).get(self.lang, []):
                self._line(f"  {line}", True)  # why: the run's own diagnosis, in words

    def _step_text(self, event: dict[str, Any]) -> str:
        done = event["step"] / max(self.total_steps, 1)
        filled = round(done * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        speed = event.get("images_per_second")
        return (f"epoch {event['epoch']}/{self.epochs} [{bar}]"
                f" {event['step']}/{self.total_steps} loss {_num(event['loss'])} "
                f"acc {_pct(event['accuracy'])} {f'{speed:,.0f} img/s' if speed else ''} "
                f"ETA {event['eta_s']:.0f}s")  # fmt: skip

    def _line(self, text: str, keep: bool) -> None:
        if self.interactive:
            self.out.write("\r\033[K" + text + ("\n" if keep else ""))
        elif keep:
            self.out.write(text + "\n")  # a log file gets whole lines, not redraws
        self.out.flush()


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


class _Recorder:
    """Writes events to the store in batches: every non-step event at once, steps at most
    FLUSH_SECONDS apart (viewers in the browser poll the database anyway)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.pending: list[dict[str, Any]] = []
        self.flushed = time.monotonic()

    def add(self, event: dict[str, Any]) -> None:
        self.pending.append(event)
        if event["kind"] != "step" or time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            record_events(self.store, self.run_id, self.pending)
            self.pending = []
        self.flushed = time.monotonic()


def train_command(args: argparse.Namespace, settings: Settings, err: TextIO = sys.stderr) -> int:
    """Run `cnnviz train`; exit code 0 when the run completed, stopped or stopped early (1 when
    it diverged, stalled or failed)."""
    store = open_store(settings)

    def checkpoint_of(run_id: str) -> Path:
        return newest_checkpoint(store, settings.checkpoints_dir, run_id)

    try:
        body = RunCreate.model_validate(_request(args))
        config = plan_run(body, settings, checkpoint_of)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            err.write(f"error: {'.'.join(map(str, error['loc']))}: {error['msg']}\n")
        return 2
    except CNNCoreError as exc:
        err.write(f"error: {exc.field or 'config'}: {exc}\n")
        return 2
    owner = claim_owner()
    run_id = new_run_id()
    store.create_run(run_id, config, "cli", owner)
    store.beat([run_id], time.time())
    # Alive for every server reading this database, on any host (app.runs.liveness).
    heartbeat = Heartbeat(store, lambda: [run_id], settings.run_heartbeat_seconds)
    recorder = _Recorder(store, run_id)
    recorder.add({"kind": "status", "status": "running", "time": time.time()})
    from_run = body.init_from.run_id if body.init_from else None
    source = checkpoint_of(from_run) if from_run else None
    spec = RunSpec.of(run_id, config, settings.checkpoints_dir / run_id, source,
                      settings.run_checkpoints_kept)  # fmt: skip
    stop = {"requested": False}

    def on_interrupt(_signum, _frame) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        err.write("\nstopping after this step (Ctrl-C again to abort)\n")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    bar = None if args.quiet else ProgressBar(err, lang=getattr(args, "lang", "en"))
    where = describe_database(settings.database_url, settings.sqlite_path)
    err.write(f"run {run_id} (recorded in {where})\n")
    end: dict[str, Any] = {}
    try:
        for event in execute_run(spec, should_stop=lambda: stop["requested"]):
            recorder.add(event)
            if bar:
                bar.update(event)
            if event["kind"] == "end":
                end = event
    except KeyboardInterrupt:
        end = {"kind": "end", "reason": "interrupted", "error": "aborted with Ctrl-C",
               "time": time.time()}  # fmt: skip
        recorder.add(end)
    except Exception as exc:  # the record must say why the run ended
        end = failure_event(exc)
        recorder.add(end)
    finally:
        recorder.flush()
        heartbeat.close()
        signal.signal(signal.SIGINT, previous)
        release_owner(owner)
        store.close()
    reason = end.get("reason", "failed")
    detail = f" ({end['error']})" if end.get("error") else ""
    err.write(f"run {run_id}: {reason}{detail}; checkpoints in {spec.checkpoint_dir}\n")
    if reason == "interrupted":
        return 130
    return 0 if reason in ("completed", "early_stop", "stopped") else 1
