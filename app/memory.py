"""The server's heap under glibc: fewer malloc arenas, and free memory handed back after heavy work.

Each request thread that calls malloc gets an arena of its own, up to 8 per core
(mallopt(3), M_ARENA_MAX); memory a thread frees stays in its arena for that thread to reuse,
so with dozens of request threads allocating a forward pass's tensors each, the process keeps
the high-water mark of every arena at once. With two arenas the threads share their free
memory (docs/PERFORMANCE.md, "Classroom load"). After a heavy request (feature maps, receptive
fields, run starts: the `heavy_work` groups of app/limits.py) `malloc_trim(0)` returns the
free pages of every arena to the system (malloc_trim(3); glibc ≥ 2.8 trims inside the heaps,
not only at their top), at most once per `malloc_trim_seconds`.

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
    """`trim()` at most once per `every` seconds, however many threads ask."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        """Trim unless one was done less than `every` seconds ago (or one is running)."""
        if self.every <= 0 or not self._lock.acquire(blocking=False):
            return False
        try:
            now = time.monotonic()
            if now - self._last < self.every:
                return False
            self._last = now
            trim()
            return True
        finally:
            self._lock.release()
