"""A layer's maps as uint8 levels: the ranges at once, the levels at once or when first needed.

Level 0 is a map's low end and level 255 its high end: value = low + level/255 · (high − low).
The ranges are what an answer about a picture needs (every layer's shapes and per-map ranges);
the levels are needed only when a picture of the layer is drawn. `layer_levels` makes both at
once. With `deferred`, the levels are made later from the layer's own float maps, held until
then: the pass over every value that scales and casts them moves out of the answer, and it gives
the very same bytes, since it runs the same operations on the same values with the same scaling
(computed with the ranges, at once). Held floats are counted against a `HeldFloats` budget and
given back when the levels are made; a map that a later in-place operation changed in the
meantime is found from its version counter (`LayerLevels.overwritten`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from cnncore.errors import CNNCoreError

__all__ = ["NORMALISATIONS", "HeldFloats", "LayerLevels", "Scratch", "layer_levels"]

NORMALISATIONS = ("per_channel", "per_layer")


class Scratch:
    """A float buffer lent to `layer_levels` again and again within one request.

    Big layers are megabytes: a fresh temporary per layer costs fresh pages from the system,
    a reused one does not. Never share one between threads.
    """

    def __init__(self) -> None:
        self._buffer = torch.empty(0)

    def take(self, like: torch.Tensor) -> torch.Tensor:
        """A float32 tensor shaped like `like`, on its device (contents undefined)."""
        need = like.numel()
        if self._buffer.numel() < need or self._buffer.device != like.device:
            self._buffer = torch.empty(need, dtype=torch.float32, device=like.device)
        return self._buffer[:need].view(like.shape)


class HeldFloats:
    """A byte budget for float maps held until their levels are made (thread-safe).

    `take(n)` says whether n more bytes may be held; `give_back(n)` when they are let go.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.held = max_bytes, 0
        # re-entrant: a collection inside `take` may finalise unmade levels, which give back
        self._lock = threading.RLock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.held + nbytes > self.max_bytes:
                return False
            self.held += nbytes
            return True

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self.held -= nbytes


@dataclass
class _Floats:
    """What a layer's levels are made from: its shown maps and their scaling (see `_quantise`)."""

    maps: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    finite: bool
    version: int  # of `maps` when kept: a later in-place operation changes it
    nbytes: int  # held against `budget` (the whole storage the maps keep alive)
    budget: HeldFloats


class _Made:
    """A layer's levels, made once: at once, or from held floats by the first to ask."""

    __slots__ = ("_levels", "_floats", "_lock")

    def __init__(self, levels: np.ndarray | None, floats: _Floats | None = None) -> None:
        self._levels, self._floats = levels, floats
        self._lock = threading.Lock()

    def get(self, scratch: Scratch | None = None) -> np.ndarray:
        if self._levels is None:
            with self._lock:
                if self._levels is None:
                    kept = self._floats
                    self._levels = _quantise(kept.maps, kept.low, kept.high, kept.finite,
                                             scratch)  # fmt: skip
                    self.let_go()
        return self._levels

    def let_go(self) -> None:
        """Drop the held floats (call under the lock, or when no other thread has this)."""
        kept, self._floats = self._floats, None
        if kept is not None:
            kept.budget.give_back(kept.nbytes)

    def __del__(self) -> None:  # levels never asked for (a result dropped early): give back
        if getattr(self, "_floats", None) is not None:
            self.let_go()

    @property
    def floats(self) -> _Floats | None:
        return self._floats


@dataclass(frozen=True)
class LayerLevels:
    """One layer's maps as uint8 levels, ready to be coloured and tiled.

    `levels` is (tiles, h, w): one tile per shown channel. A layer of units without a spatial
    extent (a linear layer's n outputs, or C channels of 1×1 after global pooling) is folded
    into one tile of ceil(n / cols) × cols cells, filled row by row, unused cells at level 0;
    then `units` is True and every unit is shown.
    `ranges[i]` is (low, high) of tile i: level 0 is low, level 255 is high.
    """

    name: str
    type: str
    shape: tuple[int, ...]  # the layer's output without the batch axis
    channels: int  # channels of a map layer, units of a folded one
    tile_shape: tuple[int, int, int]  # (tiles, h, w) of `levels`
    ranges: tuple[tuple[float, float], ...]
    units: bool = False
    _made: _Made = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    # False when a shown tile's range has an end at ±inf or NaN (weights that overflow float32):
    # its levels are then 0 where the value is not a number (`_quantise`)
    finite: bool = True

    @property
    def levels(self) -> np.ndarray:
        return self._made.get()

    @property
    def deferred(self) -> bool:
        """True while the levels are still to be made from held floats."""
        return self._made.floats is not None

    @property
    def overwritten(self) -> bool:
        """True when held floats were changed in place since they were kept."""
        floats = self._made.floats
        return floats is not None and floats.maps._version != floats.version

    def settle(self, scratch: Scratch | None = None) -> None:
        """Make the levels now if they are still deferred (`scratch` lends the float buffer)."""
        self._made.get(scratch)

    def let_go(self) -> None:
        """Give the held floats back unmade (their values were overwritten)."""
        self._made.let_go()

    @property
    def tiles(self) -> int:
        return self.tile_shape[0]

    @property
    def channels_shown(self) -> int:
        return self.channels if self.units else self.tiles

    @property
    def nbytes(self) -> int:
        """The levels' bytes (made or not; held floats are counted by their `HeldFloats`)."""
        return math.prod(self.tile_shape)


def _fold_units(values: torch.Tensor) -> torch.Tensor:
    """n values → one (1, rows, cols) near-square tile, row by row, padded with the minimum
    (so the unused cells are level 0 and stay inside the range the levels are scaled from)."""
    flat = values.reshape(-1)
    cols = max(1, math.ceil(math.sqrt(flat.numel())))
    rows = max(1, math.ceil(flat.numel() / cols))
    grid = flat.new_full((rows * cols,), float(flat.min()) if flat.numel() else 0.0)
    grid[: flat.numel()] = flat
    return grid.reshape(1, rows, cols)


def _quantise(
    shown: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    finite: bool,
    scratch: Scratch | None,
) -> np.ndarray:
    """level = round((x − low) · 255 / (high − low)) as one fused multiply-add per element, the
    rounding folded in as +0.5 before truncation (`offset` = 0.5 − low · scale): a big layer's
    activations are megabytes, and each extra temporary costs a pass over them and fresh pages.
    The scaling is worked out here, not with the ranges: an answer needs the ranges only.
    """
    span = high - low
    scale = torch.where(span > 0, 255.0 / torch.where(span > 0, span, 1.0), 0.0)[:, None, None]
    offset = 0.5 - low[:, None, None] * scale
    out = scratch.take(shown) if scratch is not None else None
    scaled = torch.addcmul(offset, shown, scale, out=out)
    # Finite values land in [0.5, 255.5] by construction; only inf or NaN (a diverged model)
    # could leave that range, and only then is the extra clamping pass needed.
    if not finite:
        scaled = scaled.nan_to_num_(0.0).clamp_(0, 255)
    if scaled.device.type == "cpu":  # numpy's float → uint8 cast is ~3× faster than torch's;
        return scaled.numpy().astype(np.uint8)  # both truncate, and all values are in range
    return scaled.to(torch.uint8).cpu().numpy()


def _lowest(
    values: torch.Tensor, maps: torch.Tensor, shown: torch.Tensor, units: bool, normalise: str
) -> torch.Tensor:
    """Each shown tile's lowest value: its map's (per_channel) or the whole layer's."""
    if units:  # the padding of the last row is not a value of the layer
        return values.min().reshape(1)
    if normalise == "per_channel":
        return shown.amin(dim=(1, 2))
    return maps.min().expand(shown.shape[0])  # channels beyond the shown ones included


def _highest(
    values: torch.Tensor, maps: torch.Tensor, shown: torch.Tensor, units: bool, normalise: str
) -> torch.Tensor:
    """Each shown tile's highest value, as `_lowest`."""
    if units:
        return values.max().reshape(1)
    if normalise == "per_channel":
        return shown.amax(dim=(1, 2))
    return maps.max().expand(shown.shape[0])


def layer_levels(
    name: str,
    kind: str,
    output: torch.Tensor,
    *,
    normalise: str = "per_channel",
    max_channels: int = 64,
    scratch: Scratch | None = None,
    deferred: HeldFloats | None = None,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> LayerLevels:
    """Scale the first `max_channels` channels of one sample's output to uint8 levels.

    per_channel: each map from its own minimum to maximum (shows every map's pattern);
    per_layer: all maps share the layer's range (shows which maps respond most strongly).
    A constant map has no contrast to show: it is all level 0 with its one value as its range.
    Units (see `LayerLevels`) are one tile, so both scalings give the same picture.
    `scratch` lends a float buffer reused from layer to layer (one request's own).
    `deferred`: hold the shown floats (no copy) and make the levels when first asked for, when
    the budget allows; else now.
    `low` / `high`: each shown tile's lowest / highest value (float32) when already known
    exactly (`cnncore.derived_ranges`), so not computed again.
    """
    if normalise not in NORMALISATIONS:
        raise CNNCoreError(
            f"normalise must be one of {', '.join(NORMALISATIONS)}, not {normalise!r}", "normalise"
        )
    values = output.detach().float()
    if values.dim() == 2:  # a single (h, w) map
        values = values[None]
    units = values.dim() != 3 or tuple(values.shape[1:]) == (1, 1)
    maps = _fold_units(values) if units else values
    shown = maps[:max_channels]
    if low is None:
        low = _lowest(values, maps, shown, units, normalise)
    if high is None:
        high = _highest(values, maps, shown, units, normalise)
    lows, highs = low.flatten().tolist(), high.flatten().tolist()
    ranges = tuple(zip(lows, highs, strict=True))
    # a span is finite exactly when both its ends are; a sum of finite float32 values cannot
    # overflow a Python float, and an inf or NaN among them makes the sum one
    finite = math.isfinite(sum(lows) + sum(highs))
    count = values.numel() if units else int(maps.shape[0])
    tile_shape = (int(shown.shape[0]), int(shown.shape[1]), int(shown.shape[2]))
    held = shown.untyped_storage().nbytes()
    # an inference tensor has no version counter to tell a later in-place change by
    if deferred is not None and not shown.is_inference() and deferred.take(held):
        made = _Made(None, _Floats(shown, low, high, finite, shown._version, held, deferred))
    else:
        made = _Made(_quantise(shown, low, high, finite, scratch))
    return LayerLevels(name, kind, tuple(output.shape), count, tile_shape, ranges, units, made,
                       finite)  # fmt: skip
