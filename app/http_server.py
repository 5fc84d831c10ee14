"""How `cnnviz serve` runs uvicorn: h11 with the deadlines and the connection cap it lacks.

uvicorn closes a connection idle *between* requests (`timeout_keep_alive`) but waits forever
for a request head sent one byte at a time, for a body that never finishes and for a reader
that stops reading a response (an SSE follower whose tab froze: the stream's writes pause on the
full socket buffer and stay paused). `GuardedH11Protocol` adds three deadlines, each closing
the connection when it passes:
- the request head (request line and headers) within `http_header_timeout_seconds` of the
  connection or of its first byte after a previous response;
- the body within `http_body_timeout_seconds` of its head (80 MB in 120 s: 0.7 MB/s);
- a paused write resumes within `http_write_timeout_seconds`.
A connection past `max_connections`, or past the process's file-descriptor limit less a reserve
(the database, checkpoints, the runs' pipes), is closed as soon as it is accepted, so the
process never runs out of descriptors (asyncio then logs every failed accept); refusals are
logged once a minute with their count, not once each.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings, get_settings

__all__ = ["FD_RESERVE", "GuardedH11Protocol", "connection_cap", "uvicorn_options"]

FD_RESERVE = 128  # descriptors kept for everything but client connections
logger = logging.getLogger("uvicorn.error")


def connection_cap(settings: Settings) -> int:
    """Open connections allowed: the setting, below the soft file-descriptor limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - FD_RESERVE))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head, body and write deadlines and a connection cap."""

    refused: ClassVar[int] = 0  # connections refused since the last log line
    last_refusal_log: ClassVar[float] = float("-inf")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.deadlines = {
            "head": settings.http_header_timeout_seconds,
            "body": settings.http_body_timeout_seconds,
        }
        self.write_timeout = settings.http_write_timeout_seconds
        self.cap = connection_cap(settings)
        self.reading: tuple[str, asyncio.TimerHandle] | None = None
        self.writing: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.cap:
            self._refuse()
            return
        self._watch_reading()

    def _refuse(self) -> None:
        cls = GuardedH11Protocol
        cls.refused += 1
        now = time.monotonic()
        if now - cls.last_refusal_log >= 60:
            logger.warning(
                "refused %d connection(s) over the cap of %d open connections "
                "(max_connections, or the file-descriptor limit less %d)",
                cls.refused, self.cap, FD_RESERVE,
            )  # fmt: skip
            cls.refused, cls.last_refusal_log = 0, now
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_reading()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_reading_deadline()
        if self.writing is not None:
            self.writing.cancel()
            self.writing = None
        super().connection_lost(exc)

    def _watch_reading(self) -> None:
        """The deadline of what the client is sending now: its head, its body or nothing."""
        if self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        part = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if self.reading is not None and self.reading[0] == part:
            return
        self._stop_reading_deadline()
        if part is not None:
            handle = self.loop.call_later(self.deadlines[part], self._too_slow, part)
            self.reading = (part, handle)

    def _stop_reading_deadline(self) -> None:
        if self.reading is not None:
            self.reading[1].cancel()
            self.reading = None

    def _too_slow(self, part: str) -> None:
        self.reading = None
        logger.debug("closed a connection whose request %s was too slow", part)
        self.transport.abort()  # the app, if reading the body, receives http.disconnect

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.writing is None:
            self.writing = self.loop.call_later(self.write_timeout, self._reader_gone)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.writing is not None:
            self.writing.cancel()
            self.writing = None

    def _reader_gone(self) -> None:
        self.writing = None
        logger.debug("closed a connection whose client stopped reading")
        self.transport.abort()  # close() would wait for a buffer nobody reads


def uvicorn_options() -> dict:
    """The keyword arguments `cnnviz serve` gives `uvicorn.run`: this protocol (by name, so
    each worker process imports it) and uvicorn's own idle time between requests."""
    return {"http": "app.http_server:GuardedH11Protocol", "timeout_keep_alive": 5}
