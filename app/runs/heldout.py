"""The held-out pictures of runs, as the /train confusion matrix opens them.

A run's held-out split and its predictions (`cnncore.heldout`) are computed once per checkpoint
file and kept for the few runs looked at last (`heldout_cache_runs`), each picture as uint8
pixels: what is held is bounded by `heldout_max_values` (channels × height × width × pictures)
per run, refused before anything is loaded when a run's split would be larger. One split is
computed at a time in the process (the rest wait, then read it from the cache), so a page
asking again for the same run, or many pages at once, cost one computation, not a CPU each;
reading a kept split is a dictionary lookup, so it is not charged to a client's heavy quota.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.settings import Settings
from cnncore.checkpoint import load_checkpoint, read_checkpoint_info
from cnncore.errors import CNNCoreError
from cnncore.heldout import HeldOut, held_out_data, held_out_predictions
from cnncore.images import encode_png, unit_pixels

__all__ = ["HeldOutRun", "HeldOutRuns"]


@dataclass(frozen=True)
class HeldOutRun:
    checkpoint: str  # file name
    epoch: int  # whose weights the checkpoint holds (the best one when early stopping restored it)
    held_out: HeldOut
    pixels: np.ndarray  # N×H×W (grey) or N×H×W×3, uint8: the pictures as the network read them

    def png(self, index: int) -> bytes:
        return encode_png(self.pixels[index])


class HeldOutRuns:
    """A small LRU of `HeldOutRun`s keyed by checkpoint path and modification time (a newer
    epoch's checkpoint is a new entry)."""

    def __init__(self, entries: int, max_values: int) -> None:
        self.entries = entries
        self.max_values = max_values
        self._cache: OrderedDict[tuple[str, int], HeldOutRun] = OrderedDict()
        self._lock = threading.Lock()
        self._computing = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> HeldOutRuns:
        return cls(settings.heldout_cache_runs, settings.heldout_max_values)

    def get(self, checkpoint: Path) -> HeldOutRun:
        key = (str(checkpoint), checkpoint.stat().st_mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self._computing:
            with self._lock:  # computed meanwhile, while this request waited for its turn
                if key in self._cache:
                    return self._cache[key]
            found = self._compute(checkpoint)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return found

    def _compute(self, path: Path) -> HeldOutRun:
        config, trained, progress = read_checkpoint_info(path)
        channels, height, width = trained.input_shape
        values = trained.val_size * channels * height * width
        if values > self.max_values:
            raise CNNCoreError(
                f"this run held out {trained.val_size} pictures of {channels}×{height}×{width}: "
                f"more than this server lists ({self.max_values} values, setting "
                "CNNVIZ_HELDOUT_MAX_VALUES)", "run_id",
            )  # fmt: skip
        checkpoint = load_checkpoint(path)
        try:
            split = held_out_data(config.data, trained, config.data.fit)
        except OSError as exc:  # a student's dataset deleted since: its version went with it
            gone = "the pictures this run learnt from are gone (its dataset was deleted)"
            raise LookupError(gone) from exc
        held = held_out_predictions(checkpoint.model, split, trained)
        pixels = (
            np.stack([unit_pixels(image) for image in split.val_images])
            if len(split.val_labels)
            else np.zeros((0, height, width), np.uint8)
        )
        # With early stopping the run ends holding its best epoch's weights: name that epoch.
        restored = progress.get("restored_best") and progress.get("best_epoch")
        epoch = int(progress["best_epoch"] if restored else progress.get("epoch", 0))
        return HeldOutRun(path.name, epoch, held, pixels)


_runs: HeldOutRuns | None = None
_lock = threading.Lock()


def get_held_out_runs() -> HeldOutRuns:
    """The process-wide cache (a FastAPI dependency; tests override it)."""
    from app.settings import get_settings

    global _runs
    with _lock:
        if _runs is None:
            _runs = HeldOutRuns.from_settings(get_settings())
        return _runs
