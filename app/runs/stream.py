"""Viewers of a run: its stored history, then its live events, with nothing lost or repeated.

The database is the source of truth; live delivery is only a shortcut. A viewer starts from the
event id it has seen (`Last-Event-ID`, or 0) and reads every later event from the store, through
the store's replay cache (`app.runs.replay`: each event read and encoded once, whatever the
number of viewers replaying it). While
the run is driven by this process, each new event is also pushed into the viewer's mailbox, SSE
frame already encoded (once for all viewers). The viewer sends mailbox frames while their ids
follow on from the last one it sent; ids it already sent are skipped, and a gap (events pushed
before it registered, or dropped from a full mailbox by a viewer too slow to keep up) sends it
back to the store for the missing ones. Hence no loss, no duplicates, bounded memory, any
number of viewers.

A run driven by another process (`cnnviz train`, another server worker) has no pushes here: its
viewers re-read the store every `poll_seconds`. The run's `end` event is the last one a viewer
gets; then its stream closes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from app.runs.replay import replay_cache, sse_frame
from app.runs.store import RunRecord, RunStore, StoredEvent

__all__ = ["Frame", "RunChannel", "RunSubscription", "sse_frame"]


@dataclass(frozen=True)
class Frame:
    event_id: int
    data: bytes
    final: bool


class _Group:
    """The viewers of one run on one event loop, and the frames waiting for their delivery."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.viewers: set[RunSubscription] = set()
        self.pending: list[Frame] = []
        self.armed = False  # a delivery is scheduled on the loop
        self.last = 0.0  # time.monotonic() of the last delivery


class RunChannel:
    """The live viewers of one run driven by this process, grouped by their event loop (one
    wake-up per loop per delivery, however many viewers).

    Every delivery costs each viewer one socket write (HTTP framing, a system call), so with
    many viewers deliveries are spaced: at least `spacing_per_viewer` × viewers seconds apart
    (at most `max_spacing`); whatever arrives meanwhile waits and goes in the next one. One
    viewer gets each batch of events at once; fifty or more get a write at most every 50 ms,
    which bounds the server's writes per second whatever the number of viewers. (150 ms, tried
    first, saved little server CPU on the 2-core VM and made a short epoch look 15–25 % slower at
    the viewers: docs/PERFORMANCE.md, Training runs.) Frames are encoded once per event."""

    def __init__(self, spacing_per_viewer: float = 0.001, max_spacing: float = 0.05) -> None:
        self.spacing_per_viewer = spacing_per_viewer
        self.max_spacing = max_spacing
        self._lock = threading.Lock()
        self._groups: dict[asyncio.AbstractEventLoop, _Group] = {}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(group.viewers) for group in self._groups.values())

    def add(self, subscription: RunSubscription) -> None:
        with self._lock:
            group = self._groups.get(subscription.loop)
            if group is None:
                group = self._groups[subscription.loop] = _Group(subscription.loop)
            group.viewers.add(subscription)

    def discard(self, subscription: RunSubscription) -> None:
        with self._lock:
            group = self._groups.get(subscription.loop)
            if group is not None:
                group.viewers.discard(subscription)
                if not group.viewers:
                    del self._groups[subscription.loop]

    def publish(self, events: list[StoredEvent]) -> None:
        """Push stored events to every viewer; callable from any thread."""
        if not events:
            return
        with self._lock:
            groups = list(self._groups.values())
        if not groups:
            return
        frames = [Frame(e.event_id, sse_frame(e), e.final) for e in events]
        for group in groups:
            with self._lock:
                group.pending.extend(frames)
                if group.armed:
                    continue  # the scheduled delivery takes these too
                group.armed = True
                spacing = min(self.max_spacing, self.spacing_per_viewer * len(group.viewers))
                delay = group.last + spacing - time.monotonic()
            try:
                group.loop.call_soon_threadsafe(self._schedule, group, delay)
            except RuntimeError:  # that loop has closed: its viewers are gone
                with self._lock:
                    self._groups.pop(group.loop, None)

    def _schedule(self, group: _Group, delay: float) -> None:
        if delay > 0:
            group.loop.call_later(delay, self._deliver, group)
        else:
            self._deliver(group)

    def _deliver(self, group: _Group) -> None:
        """On the group's loop: every waiting frame to every viewer of the group."""
        with self._lock:
            frames, group.pending, group.armed = group.pending, [], False
            group.last = time.monotonic()
            viewers = list(group.viewers)
        for subscription in viewers:
            subscription.offer(frames)


class RunSubscription:
    """One viewer. Create it on the event loop that will iterate `frames()`."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        after: int,
        channel: RunChannel | None,
        *,
        replay_batch: int,
        poll_seconds: float,
        mailbox_frames: int,
        abandoned: Callable[[RunRecord], bool],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.run_id = run_id
        self.last = after
        self._store = store
        self._replay = replay_cache(store)
        self._channel = channel
        self._replay_batch = replay_batch
        self._poll_seconds = poll_seconds
        self._abandoned = abandoned  # marks a dead owner's run interrupted; True if it did
        self._mailbox: deque[Frame] = deque(maxlen=mailbox_frames)  # full: oldest dropped
        self._wake = asyncio.Event()
        self._done = False
        if channel is not None:
            channel.add(self)  # before the first read: nothing can slip between the two

    @property
    def live(self) -> bool:
        return self._channel is not None

    def offer(self, frames: list[Frame]) -> None:
        self._mailbox.extend(frames)
        self._wake.set()

    def close(self) -> None:
        """Unregister (idempotent): the viewer left."""
        if self._channel is not None:
            self._channel.discard(self)

    async def _catch_up(self) -> AsyncIterator[bytes]:
        """Every stored event after `last`, in id order: the shared encoded pages."""
        chunks = await asyncio.to_thread(self._replay.after, self.run_id, self.last)
        if chunks is None:  # a history the cache does not hold: read it here
            async for chunk in self._catch_up_from_store():
                yield chunk
            return
        for chunk in chunks:
            self.last, self._done = chunk.last, chunk.final
            yield chunk.data

    async def _catch_up_from_store(self) -> AsyncIterator[bytes]:
        """The same, a database page per chunk, encoded for this viewer alone."""
        while True:
            rows = await asyncio.to_thread(
                self._store.events_after, self.run_id, self.last, self._replay_batch
            )
            chunk = []
            for row in rows:
                self.last = row.event_id
                self._done = row.final
                chunk.append(sse_frame(row))
                if self._done:
                    break
            if chunk:
                yield b"".join(chunk)
            if self._done or len(rows) < self._replay_batch:
                return

    async def _live(self) -> AsyncIterator[bytes]:
        """Pushed frames while they follow on, all that are ready as one chunk (one write);
        returns at the end or at a gap."""
        while True:
            chunk, gap = [], False
            while self._mailbox:
                frame = self._mailbox.popleft()
                if frame.event_id <= self.last:
                    continue  # already sent from the store
                if frame.event_id != self.last + 1:
                    self._mailbox.appendleft(frame)
                    gap = True  # the store has the missing events
                    break
                self.last = frame.event_id
                self._done = frame.final
                chunk.append(frame.data)
                if self._done:
                    break
            if chunk:
                yield b"".join(chunk)
            if gap or self._done:
                return
            if self._mailbox:
                continue  # more arrived while the chunk was being sent
            # No await between the emptiness check and clear(): no wake-up can be lost.
            self._wake.clear()
            await self._wake.wait()

    async def _wait_for_other_process(self) -> None:
        record = await asyncio.to_thread(self._store.get_run, self.run_id)
        if record is None:
            self._done = True
        elif record.finished:
            # Its `end` is stored: one more catch-up sends it. A record finished without an
            # end event (written by an older version) ends the stream after that catch-up.
            self._done = record.last_event_id <= self.last
        elif not await asyncio.to_thread(self._abandoned, record):
            await asyncio.sleep(self._poll_seconds)

    async def frames(self) -> AsyncIterator[bytes]:
        """The viewer's SSE frames (one or more events per chunk) until the run's `end`;
        unregisters however it stops."""
        try:
            while not self._done:
                async for frame in self._catch_up():
                    yield frame
                if self._done:
                    return
                if self.live:
                    async for frame in self._live():
                        yield frame
                else:
                    await self._wait_for_other_process()
        finally:
            self.close()
