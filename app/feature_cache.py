"""Memory for `/api/features`: built models, results and their PNGs, each in a bounded LRU.

- models: a few built zoo models with their traced graphs (vgg16 alone holds ~530 MB);
- index: (picture hash, model, options) → result id, so the same request costs no forward pass;
- results: result id (a random token) → the uint8 maps and the PNGs drawn from them, bounded in
  count and, maps and PNGs together, by one byte budget (`feature_store_bytes`).
A PNG is drawn when first asked for, so answering the POST costs the forward pass and the
maps' ranges only: each layer's uint8 levels are made from its held float maps right after the
answer is sent (`settle_soon`, one background thread) or by a first picture request, whichever
comes first; the floats held meanwhile are bounded by `feature_deferred_bytes` (beyond it, the
levels are made before answering, as each layer appears). A result is charged for its levels
whether made yet or not. A PNG is kept inside its result, so evicting a result frees its PNGs
with it (a PNG cache of its own kept the PNGs of results already gone, which no URL could reach
any more).
Pictures in work are limited to `feature_concurrency` at once (`forward_slots`): the routes
decode a picture, preprocess it and run the forward pass (feature maps or a receptive field)
holding one slot, since each step holds pixels or activations. The live routes (a drawing's maps
through a small model, a live prediction) hold none: they run on the `live_workers` threads of
app/live_pool.py, which bound them instead, so they never queue behind a VGG-16 pass. Models are
built under one lock per model, so a LeNet-5 is not kept waiting while VGG-16 loads.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from app.settings import Settings, get_settings
from app.small_work import one_torch_thread_pool
from cnncore.device import resolve_device
from cnncore.features import FeatureMaps, HeldFloats, LayerGraph, render_picture, trace_layers
from cnncore.images import DecodedImage, encode_png, shrink
from cnncore.pretrained import load_pretrained
from cnncore.weights import LoadedModel

if TYPE_CHECKING:
    from app.weights_choice import RunWeights

log = logging.getLogger("cnnviz.features")
K = TypeVar("K")
V = TypeVar("V")


class LRUStore(Generic[K, V]):
    """A thread-safe least-recently-used map bounded by entry count and by total bytes."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        size_of: Callable[[V], int] = lambda _value: 0,
    ) -> None:
        self.max_entries, self.max_bytes, self.size_of = max_entries, max_bytes, size_of
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= old[1] if old else 0
            self._items[key] = (value, size)
            self._bytes += size
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        """Drop the oldest entries while over a bound (call holding the lock). The newest entry
        stays even when alone it is over the byte bound: it was just asked for, and evicting it
        would make its URLs dead on arrival."""
        while len(self._items) > 1 and (
            len(self._items) > self.max_entries
            or (self.max_bytes is not None and self._bytes > self.max_bytes)
        ):
            _key, (_value, evicted) = self._items.popitem(last=False)
            self._bytes -= evicted

    def charge(self, key: K, nbytes: int, attach: Callable[[V], bool]) -> bool:
        """Count `nbytes` more against the entry of `key` once `attach(value)` has added them to
        it, evicting older entries to make room (never `key` itself). Nothing is attached, and
        False returned, when the key is gone or the entry would then be over the byte bound
        alone; `attach` runs under the lock and returns False when it added nothing."""
        with self._lock:
            found = self._items.get(key)
            if found is None or (self.max_bytes is not None and found[1] + nbytes > self.max_bytes):
                return False
            if not attach(found[0]):
                return True
            self._items[key] = (found[0], found[1] + nbytes)
            self._items.move_to_end(key)
            self._bytes += nbytes
            self._evict_oldest()  # never `key`, now the newest and within the bound alone
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def entries(self) -> list[tuple[K, V, int]]:
        """(key, value, bytes counted) of every entry, oldest first: a snapshot to check."""
        with self._lock:
            return [(key, value, size) for key, (value, size) in self._items.items()]

    @property
    def nbytes(self) -> int:
        return self._bytes


@dataclass(frozen=True)
class FeatureModel:
    loaded: LoadedModel
    layers: LayerGraph


@dataclass(frozen=True)
class StoredResult:
    """A result kept for its PNG URLs. Not the decoded picture: its previews are among the
    maps' preprocessing steps, and a 40 M-pixel upload would hold 120 MB for nothing."""

    id: str
    maps: FeatureMaps
    colormap: str  # the one asked for with the POST: the default of its PNG URLs
    sample: str | None
    # (picture name, colormap, max side, channel) → encoded PNG; filled through
    # `LRUStore.charge`, so its bytes count against the result's entry
    pngs: dict[tuple, bytes] = field(default_factory=dict, compare=False, repr=False)


class FeatureCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: LRUStore[str | tuple, FeatureModel] = LRUStore(settings.feature_models_cached)
        self.index: LRUStore[tuple, str] = LRUStore(settings.feature_store_entries)
        self.results: LRUStore[str, StoredResult] = LRUStore(
            settings.feature_store_entries,
            settings.feature_store_bytes,
            lambda r: r.maps.nbytes,
        )
        self._build_lock = threading.Lock()  # guards `_building`
        self._building: dict[str | tuple, threading.Lock] = {}  # one lock per model in building
        self.forward_slots = threading.BoundedSemaphore(settings.feature_concurrency)
        # float maps held until their levels are made (`learned_feature_maps(deferred=...)`)
        self.deferred = HeldFloats(settings.feature_deferred_bytes)
        # one torch thread: the work is a pass over memory, and a second OpenMP team beside the
        # next request's forward pass would only wait for cores (app/small_work.py)
        self._settler = one_torch_thread_pool(1, "cnnviz-levels")
        self._settling: set[Future] = set()
        self._settling_lock = threading.Lock()

    def settle_soon(self, maps: FeatureMaps) -> None:
        """Make a fresh result's deferred levels and previews in the background thread (called
        once its answer is sent); a picture request that comes first makes its own picture."""
        if not maps.deferred:
            return
        future = self._settler.submit(maps.settle)
        with self._settling_lock:
            self._settling.add(future)
        future.add_done_callback(self._settled)

    def _settled(self, future: Future) -> None:
        with self._settling_lock:
            self._settling.discard(future)
        if future.exception() is not None:  # the floats stay held: a picture request retries
            log.error("making levels failed", exc_info=future.exception())

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait until no levels are being made in the background; False on timeout."""
        with self._settling_lock:
            pending = list(self._settling)
        return not wait(pending, timeout).not_done

    def forget_results(self) -> None:
        """Drop every stored result and PNG (built models stay): the next POST computes again."""
        for store in (self.index, self.results):
            store.clear()

    def model(self, name: str) -> FeatureModel:
        """A built model with its traced graph; built once, then shared read-only."""
        found = self.models.get(name)
        if found is not None:
            return found
        # two first requests for vgg16 must not build it twice; nor may a LeNet-5 wait for it
        with self._build_lock:
            building = self._building.setdefault(name, threading.Lock())
        with building:
            found = self.models.get(name)
            if found is None:
                loaded = load_pretrained(
                    name,
                    directory=self.settings.weights_dir,
                    device=resolve_device(self.settings.device),
                )
                found = FeatureModel(loaded, trace_layers(loaded.model))
                self.models.put(name, found)
        with self._build_lock:  # whoever comes now finds the model (or builds it anew)
            self._building.pop(name, None)
        return found

    def run_model(self, found: RunWeights, name: str) -> FeatureModel:
        """A training run's network from its checkpoint, kept like a zoo model. The key holds
        the checkpoint's version, so a newer checkpoint of the run is loaded afresh."""
        from app.weights_choice import run_weights

        key = ("run", found.run, *found.version, name)
        cached = self.models.get(key)
        if cached is None:
            loaded = run_weights(found, name)
            cached = FeatureModel(loaded, trace_layers(loaded.model))
            self.models.put(key, cached)
        return cached

    def result(
        self,
        image: DecodedImage,
        options: tuple,
        colormap: str,
        sample: str | None,
        compute: Callable[[], FeatureMaps],
    ) -> tuple[StoredResult, bool]:
        """The stored result for this picture and options, computing it only when absent.

        Returns (result, cached). The same request again gets the same result; with another
        colormap it gets a new id sharing the computed maps.
        """
        key = (
            hashlib.sha256(np.ascontiguousarray(image.rgb)).hexdigest(),
            image.rgb.shape,
            *options,
        )
        known = self.index.get(key)
        previous = self.results.get(known) if known is not None else None
        if previous is not None and (previous.colormap, previous.sample) == (colormap, sample):
            return previous, True  # same URLs: their PNGs are probably cached as well
        if previous is not None:
            maps, cached = previous.maps, True
        else:  # the caller holds one of `forward_slots`
            maps, cached = compute(), False
        stored = StoredResult(secrets.token_urlsafe(16), maps, colormap, sample)
        self.results.put(stored.id, stored)
        self.index.put(key, stored.id)
        return stored, cached

    def png(
        self,
        result_id: str,
        name: str,
        colormap: str | None,
        max_side: int | None = None,
        channel: int | None = None,
    ) -> bytes:
        """Encoded PNG of one picture of a stored result; KeyError when either is unknown.

        `max_side` shrinks a large picture (area averaging) for thumbnails; `channel` gives one
        map of a layer at full size, which is what reading values back needs.
        """
        stored = self.results.get(result_id)
        if stored is None:
            raise KeyError(result_id)
        key = (name, colormap or stored.colormap, max_side, channel)
        found = stored.pngs.get(key)
        if found is None:
            picture = render_picture(stored.maps, name, key[1], channel)
            found = encode_png(shrink(picture, max_side) if max_side else picture)
            # Kept only while its result is: when the two would not fit the budget together
            # the PNG is served without being kept (drawn again if asked for again).
            png = found
            self.results.charge(result_id, len(png), lambda r: r.pngs.setdefault(key, png) is png)
        return found


@lru_cache
def get_feature_cache() -> FeatureCache:
    return FeatureCache(get_settings())
