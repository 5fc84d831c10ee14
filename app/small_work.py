"""Small torch work on threads that use one intra-op thread each.

The vanishing-gradient experiment runs a 256-example batch through a stack of 32–64-unit layers:
each op is microseconds of arithmetic. With torch's default team (one OpenMP thread per core)
every op is a parallel region whose threads wait for each other, and on a busy machine each wait
is a scheduler slice: one `vanishing_gradients` call (sigmoid, depth 20–30, width 32–64) took
1.3–10 s of wall time with two threads at load 18–23 on the 2-core VM, 0.1–0.3 s with one
(11–19 ms of CPU against 175–590 ms). Such work runs here, on a small pool of threads that each
use one torch thread; the heavy routes (feature maps, training) keep the server's setting.

torch's thread count is per thread, but a thread takes its count from a process-wide default
when it first uses torch, and `torch.set_num_threads` also sets that default: each pool thread
sets its own count to 1, then a short helper thread sets the default back (a thread that first
touched torch in between would keep 1 thread: a slower thread, never a wrong number).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

import torch

T = TypeVar("T")


def _one_torch_thread(default: int) -> None:
    torch.get_num_threads()  # torch's first look at this thread, which would reset the count
    torch.set_num_threads(1)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))
    restore.start()
    restore.join()


def one_torch_thread_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of `workers` threads that each run torch with one thread, leaving the count that
    other threads start with as it was (the server's)."""
    return ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix=name,
        initializer=_one_torch_thread,
        initargs=(torch.get_num_threads(),),
    )


@lru_cache
def small_work_pool() -> ThreadPoolExecutor:
    """One thread per core (made on first use, from the server's thread count then)."""
    return one_torch_thread_pool(os.cpu_count() or 1, "small-torch")


async def run_small(function: Callable[..., T], *args, **kwargs) -> T:
    """`function(*args, **kwargs)` on a one-torch-thread pool thread, awaited."""
    return await asyncio.wrap_future(small_work_pool().submit(function, *args, **kwargs))
