"""The server's heap under glibc: fewer arenas, and free memory handed back when heavy work pauses.

Each request thread that calls malloc gets an arena of its own, up to 8 per core
(mallopt(3), M_ARENA_MAX); memory a thread frees stays in its arena for that thread to reuse,
so with dozens of request threads allocating a forward pass's tensors each, the process keeps
the high-water mark of every arena at once. With two arenas the threads share their free
memory (docs/PERFORMANCE.md, "Classroom load").

`malloc_trim(0)` returns the free pages of every arena to the system (malloc_trim(3); glibc ≥ 2.8
trims inside the heaps, not only at their top). Memory handed back is memory the next forward
pass must fault in again, page by page (VGG-16: up to 36 000 minor faults, ~20 % of its
forward pass), so `HeapTrimmer` trims once heavy work (feature maps, receptive fields, run
starts: the `heavy_work` groups of app/limits.py) has paused for `malloc_trim_seconds` (60 s by
default), and while it goes on at most that often. Between trims a busy server reuses what its
last requests freed; an idle one soon holds only what is live.

Only glibc has these calls: elsewhere (musl, macOS) every function here does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time

M_ARENA_MAX = -8  # from glibc's malloc.h

_libc: ctypes.CDLL | None = None
try:  # pragma: no branch - which branch depends on the C library
    _found = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if hasattr(_found, "mallopt") and hasattr(_found, "malloc_trim"):
        _libc = _found
except OSError:
    pass


def limit_arenas(count: int) -> bool:
    """At most `count` malloc arenas in this process from now on (0: glibc's default), and in
    the processes it starts (MALLOC_ARENA_MAX, read by glibc when a process starts; a value
    the environment already has is kept). True when glibc took it."""
    if count <= 0 or _libc is None:
        return False
    os.environ.setdefault("MALLOC_ARENA_MAX", str(count))
    return bool(_libc.mallopt(M_ARENA_MAX, count))


def trim() -> bool:
    """Give the free pages of every arena back to the system. True when some were."""
    return _libc is not None and bool(_libc.malloc_trim(0))


class HeapTrimmer:
    """Call it when a heavy request ends. It trims `every` seconds after the last call (none
    in between: a pause in heavy work), in a timer thread of its own; and, while heavy work
    goes on, at once when the last trim is `every` seconds old. `every` 0: never trims."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._ended = float("-inf")  # when the last heavy request ended
        self._trimmed = float("-inf")
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        """Note a heavy request's end; True when it trimmed at once."""
        if self.every <= 0:
            return False
        with self._lock:
            now = time.monotonic()
            self._ended = now
            if self._timer is None:
                self._start_timer(self.every)
            if now - self._trimmed < self.every:
                return False
            self._trimmed = now
        return trim()

    def _start_timer(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._when_quiet)
        self._timer.daemon = True
        self._timer.start()

    def _when_quiet(self) -> None:
        with self._lock:
            wait = self._ended + self.every - time.monotonic()
            if wait > 0:  # heavy work went on: look again when it may have paused
                self._start_timer(wait)
                return
            self._timer = None
            self._trimmed = time.monotonic()
        trim()
