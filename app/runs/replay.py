"""A run's stored history as SSE bytes, encoded once and shared by every viewer that replays it.

Fifty students opening the same run at once would otherwise each read its whole history from
the database and encode every event again, and the first event each of them sees would wait
behind fifty full reads. Here the first viewer to need an event reads it from the store and
encodes it; the others wait for that (a per-run lock, taken in a worker thread, never on the
event loop) and then send the very same bytes. Events are kept joined in pages of `page_events`,
so a replay from the start is a few large writes per viewer and no work per event at all;
a `Last-Event-ID` replay cuts one page and sends the rest.

The cache is only ever filled from the store, in event-id order, so it holds exactly a prefix
of what the store holds: a viewer reads the prefix, then the store's newer events and the live
pushes as before (`app.runs.stream`), and nothing is lost or sent twice. Runs whose event ids do
not run 1, 2, 3, … are not cached. The newest-used runs are kept up to `max_bytes` in all.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

from sse_starlette.event import ServerSentEvent

from app.runs.store import RunStore, StoredEvent

__all__ = ["REPLAY_CACHE_BYTES", "ReplayCache", "ReplayChunk", "replay_cache", "sse_frame"]

REPLAY_CACHE_BYTES = 32 * 2**20  # a 50-epoch LeNet-5 run's history is a few MB
_PAGE_EVENTS = 256


def sse_frame(event: StoredEvent) -> bytes:
    """One stored event as an SSE message: `id` is its event id, `data` its JSON."""
    return ServerSentEvent(data=event.data, id=str(event.event_id)).encode()


@dataclass(frozen=True)
class ReplayChunk:
    last: int  # the id of its last event
    data: bytes
    final: bool  # ends with the run's `end`


@dataclass
class _RunFrames:
    """Events 1..count of one run: sealed pages (joined bytes, frame offsets) and a tail."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pages: list[bytes] = field(default_factory=list)
    offsets: list[list[int]] = field(default_factory=list)  # where each frame of a page starts
    tail: list[bytes] = field(default_factory=list)
    count: int = 0
    final: bool = False
    nbytes: int = 0
    broken: bool = False  # ids with a gap: never cached

    def add(self, frame: bytes, page_events: int) -> None:
        self.tail.append(frame)
        self.count += 1
        self.nbytes += len(frame)
        if len(self.tail) == page_events:
            starts, at = [], 0
            for piece in self.tail:
                starts.append(at)
                at += len(piece)
            self.pages.append(b"".join(self.tail))
            self.offsets.append(starts)
            self.tail = []

    def after(self, after: int, page_events: int) -> list[ReplayChunk]:
        """The cached events after id `after`, a page per chunk."""
        chunks = []
        index, skip = divmod(after, page_events)
        for number in range(index, len(self.pages)):
            page = self.pages[number]
            data = page[self.offsets[number][skip] :] if skip else page
            last = (number + 1) * page_events
            chunks.append(ReplayChunk(last, data, self.final and last == self.count))
            skip = 0
        done = len(self.pages) * page_events
        if self.tail and self.count > after:
            chunks.append(ReplayChunk(self.count, b"".join(self.tail[max(0, after - done) :]),
                                      self.final))  # fmt: skip
        return chunks


class ReplayCache:
    """The shared, encoded histories of one store's runs. Thread-safe."""

    def __init__(
        self,
        store: RunStore,
        max_bytes: int = REPLAY_CACHE_BYTES,
        page_events: int = _PAGE_EVENTS,
        read_batch: int = 1000,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.page_events = page_events
        self.read_batch = read_batch
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _RunFrames] = OrderedDict()  # least recently used first
        self.reads = 0  # store reads made to fill the cache (for tests and benchmarks)

    def _frames(self, run_id: str) -> _RunFrames:
        with self._lock:
            frames = self._runs.get(run_id)
            if frames is None:
                frames = self._runs[run_id] = _RunFrames()
            self._runs.move_to_end(run_id)
            return frames

    def _fill(self, run_id: str, frames: _RunFrames) -> None:
        """Read and encode what the store has beyond the cached prefix (call holding its lock)."""
        while not frames.final and not frames.broken:
            rows = self.store.events_after(run_id, frames.count, self.read_batch)
            self.reads += 1
            for row in rows:
                if row.event_id != frames.count + 1:
                    frames.broken = True
                    break
                frames.add(sse_frame(row), self.page_events)
                frames.final = row.final
                if row.final:
                    break
            if len(rows) < self.read_batch:
                return

    def _evict(self) -> None:
        """Drop the least recently used runs while over `max_bytes` (the run just read is the
        most recent: it goes only if it alone is over)."""
        with self._lock:
            total = sum(f.nbytes for f in self._runs.values())
            while total > self.max_bytes and self._runs:
                total -= self._runs.popitem(last=False)[1].nbytes

    def after(self, run_id: str, after: int) -> list[ReplayChunk] | None:
        """Every stored event of the run after id `after`, encoded, in order; None when the
        run cannot be cached (the caller reads the store itself). Blocking: call it from a
        worker thread."""
        frames = self._frames(run_id)
        with frames.lock:
            self._fill(run_id, frames)
            broken = frames.broken
            chunks = [] if broken else frames.after(after, self.page_events)
        self._evict()
        return None if broken else chunks


_caches: weakref.WeakKeyDictionary[RunStore, ReplayCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def replay_cache(store: RunStore) -> ReplayCache:
    """The one cache of a store, shared by every viewer of its runs."""
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = ReplayCache(store)
        return cache
