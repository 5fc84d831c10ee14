"""glibc heap controls: fewer arenas, free pages handed back, trims rate-limited."""

import ctypes
import os
import subprocess
import sys
import threading
import time
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


def quiet_trimmer(monkeypatch, every: float):
    """A trimmer whose trims are recorded (monotonic time of each) instead of done."""
    trims: list[float] = []
    done = threading.Event()

    def trim() -> bool:
        trims.append(time.monotonic())
        done.set()
        return True

    monkeypatch.setattr(memory, "trim", trim)
    return memory.HeapTrimmer(every), trims, done


def test_busy_trims_are_rate_limited(monkeypatch):
    trimmer, trims, _done = quiet_trimmer(monkeypatch, every=60)
    clock = [100.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    assert trimmer() is True and trimmer() is False  # the first heavy request trims
    clock[0] += 59.5
    assert trimmer() is False  # heavy work went on: the next request reuses what was freed
    clock[0] += 1.0
    assert trimmer() is True
    assert trims == [100.0, 160.5]
    trimmer._timer.cancel()


def test_a_pause_in_heavy_work_trims_once(monkeypatch):
    trimmer, trims, done = quiet_trimmer(monkeypatch, every=0.3)
    trimmer._trimmed = time.monotonic()  # as if a busy trim had just been done
    assert trimmer() is False
    ended = time.monotonic()
    assert done.wait(30)
    assert len(trims) == 1 and trims[0] - ended >= 0.3 - 0.01
    time.sleep(0.5)
    assert len(trims) == 1  # one trim a pause, not one every 0.3 s


def test_heavy_work_going_on_puts_the_pause_trim_off(monkeypatch):
    trimmer, trims, done = quiet_trimmer(monkeypatch, every=0.5)
    trimmer._trimmed = float("inf")  # no busy trim in this test: only the pause's
    calls = []
    while not calls or calls[-1] - calls[0] < 1.5:  # requests ending every ~0.1 s
        trimmer()
        calls.append(time.monotonic())
        time.sleep(0.1)
    assert done.wait(30)
    # the first pause of 0.5 s (on a stalled machine a gap between two calls may be one)
    paused = next((a for a, b in zip(calls, calls[1:], strict=False) if b - a >= 0.5), calls[-1])
    assert trims[0] - paused >= 0.5 - 0.01
    assert len(trims) == 1 or paused != calls[-1]


def test_every_zero_never_trims(monkeypatch):
    trimmer, trims, _done = quiet_trimmer(monkeypatch, every=0)
    assert trimmer() is False
    assert trimmer._timer is None and trims == []
