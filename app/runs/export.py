"""A finished run's exports (`cnncore.export`), made once per checkpoint and kept on disk.

An export is keyed by the sha256 of the checkpoint file it comes from and kept in the run's own
checkpoint folder (`exports/<sha>/<file>`), so it goes when the run is deleted and a second
download is a file read. Making one (ONNX takes seconds) holds one of
`run_export_concurrency` slots; a request that waits `run_export_wait_seconds` for a slot is
refused with 503 and Retry-After rather than piling up threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.runs.history import metrics_tables
from app.runs.manager import RunError, RunManager
from app.settings import Settings
from cnncore.checkpoint import load_checkpoint
from cnncore.errors import CNNCoreError
from cnncore.export.bundle import RunFacts, file_names, write_export

__all__ = ["ExportBusy", "ExportUnavailable", "RunExport", "run_export"]

_MEDIA_BY_SUFFIX = {".onnx": "application/octet-stream",
                    ".safetensors": "application/octet-stream",
                    ".py": "text/x-python; charset=utf-8", ".md": "text/markdown; charset=utf-8",
                    ".json": "application/json", ".zip": "application/zip"}  # fmt: skip


class ExportUnavailable(Exception):
    """The run has nothing to export yet (409)."""


class ExportBusy(Exception):
    """Every export slot stayed taken while this request waited (503)."""


@dataclass(frozen=True)
class RunExport:
    path: Path  # the cached file
    name: str  # the download name
    media_type: str


_slots: threading.BoundedSemaphore | None = None
_slots_size = 0
_slots_guard = threading.Lock()


def _export_slots(size: int) -> threading.BoundedSemaphore:
    global _slots, _slots_size
    with _slots_guard:
        if _slots is None or _slots_size != size:
            _slots, _slots_size = threading.BoundedSemaphore(size), size
        return _slots


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with partial.open("wb") as out:
            write(out)
        os.replace(partial, path)  # a reader sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)


def run_export(manager: RunManager, run_id: str, fmt: str, settings: Settings) -> RunExport:
    """The cached export of the run's newest checkpoint in `fmt`, made now if needed."""
    record = manager.get(run_id)  # RunError (404) for an unknown run
    if not record.finished:
        raise ExportUnavailable(f"run {run_id} is still {record.status}: its weights can be "
                                "exported once it has finished")  # fmt: skip
    try:
        checkpoint_path = manager.checkpoint_for_run(run_id)
    except RunError as exc:
        raise ExportUnavailable(str(exc)) from exc
    names = file_names(record.config["model"], run_id)
    folder = manager.checkpoint_dir(run_id) / "exports" / _sha256(checkpoint_path)
    cached = folder / names[fmt]
    media = _MEDIA_BY_SUFFIX[cached.suffix]
    if cached.is_file():
        return RunExport(cached, names[fmt], media)
    slots = _export_slots(settings.run_export_concurrency)
    if not slots.acquire(timeout=settings.run_export_wait_seconds):
        raise ExportBusy("the server is exporting other runs; try again in a minute")
    try:
        if not cached.is_file():  # made by the request this one waited for
            try:
                checkpoint = load_checkpoint(checkpoint_path)
            except CNNCoreError as exc:  # damaged on disk: nothing this request can change
                raise ExportUnavailable(str(exc)) from exc
            facts = RunFacts(
                id=run_id, label=record.config.get("label") or "", status=record.status,
                created_at=record.created_at, init_from=record.config.get("init_from"),
                epochs=metrics_tables(manager.store, run_id)["epochs"],
                saved_at=checkpoint_path.stat().st_mtime,
            )  # fmt: skip
            _write_atomically(cached, lambda out: write_export(checkpoint, facts, fmt, out))
    finally:
        slots.release()
    return RunExport(cached, names[fmt], media)
