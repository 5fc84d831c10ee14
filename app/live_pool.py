"""The threads live predictions run on: `live_workers` of them, each with one torch thread.

A live prediction is one small network's forward pass (TinyVGG at 64×64: about a millisecond),
asked for many times a second. Intra-op parallelism cannot speed up so short a pass, and on a
loaded 2-core machine a second torch thread waits for a core that other work holds: measured
on this machine under load (docs/PERFORMANCE.md, "Live prediction"), the same pass took a
median of 1.3 ms with one torch thread and 4 to 400 ms with two. `torch.set_num_threads` acts
on the thread that calls it (and sets the count threads made later start with: restored by
`app.small_work.one_torch_thread_pool`), so these threads set it once, at their start, and never
share the request threads the other routes run on. The pool's size also bounds how many live
forward passes (and their activations) exist at once, server-wide.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from app.settings import get_settings
from app.small_work import one_torch_thread_pool

__all__ = ["live_pool"]


@lru_cache
def live_pool() -> ThreadPoolExecutor:
    """The process's one pool of live-prediction threads (made on first use)."""
    return one_torch_thread_pool(get_settings().live_workers, "live-predict")
