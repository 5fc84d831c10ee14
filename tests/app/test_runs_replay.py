"""The shared replay cache: what it returns after any event id is exactly what the store holds
after that id, SSE-encoded, however the history grew between reads; many viewers replaying at
once read the store once and share the same bytes; it stays within its byte budget."""

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from app.runs.history import record_events
from app.runs.replay import ReplayCache, replay_cache, sse_frame
from app.runs.store import SQLiteRunStore, StoredEvent


class ListStore:
    """The store's `events_after`, over a list (ids as given)."""

    def __init__(self, events: list[StoredEvent] | None = None) -> None:
        self.events = events or []

    def append(self, count: int, end: bool = False) -> None:
        first = len(self.events) + 1
        for event_id in range(first, first + count):
            kind = "end" if end and event_id == first + count - 1 else "step"
            text = "x" * (event_id % 13)
            data = f'{{"kind":"{kind}","step":{event_id},"text":"{text}"}}'
            self.events.append(StoredEvent(event_id, kind, data))

    def events_after(self, run_id, after, limit, kinds=None):
        return [e for e in self.events if e.event_id > after][:limit]


def expected(store: ListStore, after: int) -> bytes:
    return b"".join(sse_frame(e) for e in store.events if e.event_id > after)


def replayed(cache: ReplayCache, after: int) -> tuple[bytes, int, bool]:
    chunks = cache.after("r", after)
    assert chunks is not None
    assert all(c.last > after and c.data for c in chunks)
    assert [c.last for c in chunks] == sorted({c.last for c in chunks})
    assert not any(c.final for c in chunks[:-1])  # `end` only in the last chunk
    last = chunks[-1].last if chunks else after
    return b"".join(c.data for c in chunks), last, bool(chunks) and chunks[-1].final


@settings(max_examples=80, deadline=None)
@given(
    growth=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    afters=st.lists(st.integers(0, 250), min_size=1, max_size=6),
    page=st.integers(1, 9),
    batch=st.integers(1, 17),
    ends=st.booleans(),
)
def test_a_replay_is_exactly_the_stored_events_after_the_id(growth, afters, page, batch, ends):
    store = ListStore()
    cache = ReplayCache(store, page_events=page, read_batch=batch)
    for number, (count, after) in enumerate(zip(growth, afters * len(growth), strict=False)):
        ended = ends and number == len(growth) - 1 and count > 0
        store.append(count, end=ended)
        after = min(after, len(store.events))
        data, last, final = replayed(cache, after)
        assert data == expected(store, after)
        assert last == max(after, len(store.events))
        assert final == (ended and last > after)


def test_viewers_replaying_at_once_read_the_store_once_and_share_the_bytes():
    store = ListStore()
    store.append(1000, end=True)
    cache = ReplayCache(store, page_events=256, read_batch=1000)
    results: list = [None] * 50
    start = threading.Barrier(50)

    def viewer(i: int) -> None:
        start.wait()
        results[i] = cache.after("r", 0)

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.reads == 1  # one read, for the first viewer: it ends with the run's end
    assert all(len(r) == 4 for r in results)  # 256 + 256 + 256 + 232 events
    for chunks in results[1:]:
        assert all(a.data is b.data for a, b in zip(chunks[:3], results[0][:3], strict=True))
    assert b"".join(c.data for c in results[7]) == expected(store, 0)
    # a finished run is never read again
    assert cache.after("r", 500) is not None and cache.reads == 1


def test_old_runs_are_dropped_beyond_the_byte_budget():
    store = ListStore()
    store.append(100)
    size = len(expected(store, 0))
    cache = ReplayCache(store, max_bytes=int(2.5 * size), page_events=16)
    for run in ("a", "b", "c", "a", "d"):
        assert b"".join(c.data for c in cache.after(run, 0)) == expected(store, 0)
    assert list(cache._runs) == ["a", "d"]  # b and c were the least recently used
    tiny = ReplayCache(store, max_bytes=10)
    assert b"".join(c.data for c in tiny.after("a", 40)) == expected(store, 40)
    assert not tiny._runs  # a history bigger than the budget is served, not kept


def test_ids_with_a_gap_are_not_cached():
    store = ListStore([StoredEvent(1, "step", "{}"), StoredEvent(3, "step", "{}")])
    assert ReplayCache(store).after("r", 0) is None


def test_the_real_store_replays_through_one_cache_per_store(tmp_path):
    store = SQLiteRunStore(tmp_path / "runs.sqlite3")
    try:
        store.create_run("0123456789ab", {"model": "mlp"}, "web", "owner")
        events = [{"kind": "step", "step": i, "loss": 1 / i} for i in range(1, 40)]
        record_events(store, "0123456789ab", [{"kind": "status", "status": "queued"}])
        record_events(store, "0123456789ab", events)
        cache = replay_cache(store)
        assert replay_cache(store) is cache
        stored = store.events_after("0123456789ab", 0, 1000)
        for after in (0, 1, 17, 40, 41):
            chunks = cache.after("0123456789ab", after)
            wanted = b"".join(sse_frame(e) for e in stored if e.event_id > after)
            assert b"".join(c.data for c in chunks) == wanted
    finally:
        store.close()
