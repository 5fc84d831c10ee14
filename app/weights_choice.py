"""Which weights a picture goes through: a training run's newest checkpoint, shared by the
pages that show "what your trained network sees" (`/api/features` and the effective receptive
field on a picture), so both refuse the same things in the same words.

The run id is checked against `RUN_ID_PATTERN` by the forms; it becomes a file only through the
run manager (`app.runs.manager.checkpoint_for_run`), never by joining it to a path here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from cnncore.checkpoint import load_checkpoint
from cnncore.errors import CNNCoreError
from cnncore.weights import LoadedModel

__all__ = [
    "CheckpointOf",
    "RunWeights",
    "checkpoints",
    "run_checkpoint",
    "run_weights",
    "runs_by_model",
]

CheckpointOf = Callable[[str], Path]


def checkpoints() -> CheckpointOf:
    """How a run id becomes its newest checkpoint file (a dependency, so tests can swap it;
    the run manager is only opened when a run is asked for)."""
    from app.runs.manager import checkpoint_for_run

    return checkpoint_for_run


@dataclass(frozen=True)
class RunWeights:
    """A run's checkpoint file and what identifies its version: a newer checkpoint of the same
    run (another epoch, the final one, or a file rewritten in place) has another `version`."""

    run: str
    path: Path
    version: tuple[str, int, int]  # file name, modification time (ns), size


def run_checkpoint(run: str, checkpoint_of: CheckpointOf) -> RunWeights:
    """The run's newest checkpoint; an unknown run or one without a checkpoint names `run`."""
    try:
        path = checkpoint_of(run)
        stat = path.stat()
    except LookupError as exc:
        raise CNNCoreError(str(exc).strip("'\""), "run") from exc
    except OSError as exc:  # pruned between finding and reading it
        raise CNNCoreError(f"run {run} has no readable checkpoint", "run") from exc
    return RunWeights(run, path, (path.name, stat.st_mtime_ns, stat.st_size))


def run_weights(found: RunWeights, model: str) -> LoadedModel:
    """The run's network with its trained weights; the run fixes the model, so asking for
    another model with it is refused (naming `run`)."""
    loaded = load_checkpoint(found.path).loaded_model()
    if loaded.name != model:
        raise CNNCoreError(f"run {found.run} trained {loaded.name}, not {model}", "run")
    return loaded


def runs_by_model(settings: Settings, limit: int = 200) -> dict[str, list[tuple[str, str]]]:
    """(run id, newest checkpoint file) of the recent runs that have a checkpoint, by model.
    A runs database that cannot be opened lists no runs (the weights list still answers)."""
    from app.runs.store import open_run_store

    try:
        store = open_run_store(settings.database_url, settings.sqlite_path)
    except Exception:  # noqa: BLE001 - an unreachable database only hides the runs
        return {}
    try:
        found: dict[str, list[tuple[str, str]]] = {}
        for record in store.list_runs(limit):
            model = record.config.get("model")
            if record.checkpoint and isinstance(model, str):
                found.setdefault(model, []).append((record.id, record.checkpoint))
        return found
    finally:
        store.close()
