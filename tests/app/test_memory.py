"""glibc heap controls: fewer arenas, free pages handed back, trims rate-limited."""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import memory

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(memory._libc is None, reason="glibc only")

ARENAS = """
import ctypes, ctypes.util, sys, threading
from app import memory
if sys.argv[1] != "0":
    assert memory.limit_arenas(int(sys.argv[1]))
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
ready = threading.Barrier(7)
def allocate():
    libc.malloc(4096)
    ready.wait()  # all six hold their arena at once
    ready.wait()
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads: t.start()
ready.wait()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
ready.wait()
for t in threads: t.join()
"""


def arenas_with(limit: int) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", ARENAS, str(limit)], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return done.stderr.count("Arena ")


@glibc
def test_limiting_arenas_makes_threads_share_them():
    assert arenas_with(0) >= 7  # glibc's default: the main arena and one per thread
    assert arenas_with(2) == 2


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@glibc
def test_trim_hands_freed_heap_back():
    libc = memory._libc
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    memory.trim()
    blocks = [libc.malloc(4000) for _ in range(16_000)]  # 64 MB of small blocks in the heap
    for block in blocks:
        ctypes.memset(block, 1, 4000)  # touched: resident
    for block in blocks[:-1]:  # the last one pins the top: free() alone cannot shrink it
        libc.free(block)
    freed = rss_kib()
    assert memory.trim()
    assert freed - rss_kib() > 40_000  # most of the 64 MB left resident memory
    libc.free(blocks[-1])


def test_trims_are_rate_limited(monkeypatch):
    calls, clock = [], [100.0]
    monkeypatch.setattr(memory, "trim", lambda: calls.append(clock[0]) or True)
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    trimmer = memory.HeapTrimmer(every=10)
    assert trimmer() is True and trimmer() is False
    clock[0] += 9.5
    assert trimmer() is False
    clock[0] += 1.0
    assert trimmer() is True
    assert calls == [100.0, 110.5]
    assert memory.HeapTrimmer(every=0)() is False  # 0: never
