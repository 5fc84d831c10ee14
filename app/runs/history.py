"""A run's history: recording its events with the status changes they imply, and reading its
metrics back as tables (CSV and JSON export, run comparison).

Events come from the trainer (`start`, `step`, `epoch`, `paused`, `resumed`, `diverged` — also
for a stalled run, with its diagnosis —, `early_stop`, `end`), from the worker (`checkpoint`)
and from the manager (`status`, and an `end` whose reason is `failed` or `interrupted` when a
worker dies or the server stops). The status a run shows is derived from its events only, in the
same transaction that stores them, so the
record and the history can never disagree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from app.runs.store import END_STATUS, RunChanges, RunStore, StoredEvent

__all__ = ["EPOCH_COLUMNS", "STEP_COLUMNS", "metrics_csv", "metrics_tables", "record_events"]

STEP_COLUMNS = ("step", "epoch", "loss", "accuracy", "lr", "images_per_second", "elapsed_s")
EPOCH_COLUMNS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "lr", "images_per_second", "elapsed_s")  # fmt: skip
_SUMMARY_FROM = {
    "start": ("total_steps", "steps_per_epoch", "device"),
    "step": ("step", "epoch", "loss", "accuracy", "images_per_second", "eta_s", "elapsed_s"),
    "epoch": ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_epoch"),
    "end": ("reason", "elapsed_s", "epochs_completed"),
    "diverged": ("diagnosis", "explanation"),  # why a diverged or stalled run stopped
}


def _changes(events: Sequence[dict[str, Any]]) -> RunChanges:
    """The run's new status, error, checkpoint and summary after these events."""
    changes: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for event in events:
        kind = event["kind"]
        for key in _SUMMARY_FROM.get(kind, ()):
            if key in event:
                summary[key] = event[key]
        if kind == "start":
            summary["params"] = event["model"]["params"]
            summary["trainable_params"] = event["model"]["trainable_params"]
            summary["dataset"] = event["dataset"]["name"]
        elif kind == "epoch":
            summary["epochs_completed"] = event["epoch"]
        elif kind == "status":
            changes["status"] = event["status"]
        elif kind == "paused":
            changes["status"] = "paused"
        elif kind == "resumed":
            changes["status"] = "running"
        elif kind == "checkpoint":
            changes["checkpoint"] = event["file"]
        elif kind == "end":
            changes["status"] = END_STATUS[event["reason"]]
            if event.get("error"):
                changes["error"] = str(event["error"])
    return RunChanges(summary=summary, **changes)


def record_events(
    store: RunStore, run_id: str, events: Sequence[dict[str, Any]]
) -> list[StoredEvent]:
    """Store events (ids assigned by the store) and the changes they imply, in one go."""
    return store.record(run_id, events, _changes(events))


def _all_events(store: RunStore, run_id: str, kinds: Sequence[str],
                batch: int = 5000) -> Iterator[dict[str, Any]]:  # fmt: skip
    after = 0
    while True:
        rows = store.events_after(run_id, after, batch, kinds)
        for row in rows:
            yield json.loads(row.data)
        if len(rows) < batch:
            return
        after = rows[-1].event_id


def metrics_tables(store: RunStore, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every step's and every epoch's scalar metrics (no pictures), in order."""
    tables: dict[str, list[dict[str, Any]]] = {"steps": [], "epochs": []}
    for event in _all_events(store, run_id, ("step", "epoch")):
        kind = event["kind"]
        columns = STEP_COLUMNS if kind == "step" else EPOCH_COLUMNS
        tables["steps" if kind == "step" else "epochs"].append(
            {name: event.get(name) for name in columns}
        )
    return tables


def metrics_csv(tables: dict[str, list[dict[str, Any]]]) -> str:
    """One table: a row per step and per epoch, `kind` telling which, blanks where a column
    does not apply (spreadsheets and pandas read it as it is)."""
    columns = ["kind", *dict.fromkeys((*STEP_COLUMNS, *EPOCH_COLUMNS))]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    rows = [("step", row) for row in tables["steps"]] + [("epoch", r) for r in tables["epochs"]]
    # in training order: an epoch's row right after the last step it covers
    rows.sort(key=lambda item: (item[1]["step"] or 0, item[0] == "epoch"))
    for kind, row in rows:
        writer.writerow({"kind": kind, **{k: "" if v is None else v for k, v in row.items()}})
    return out.getvalue()
