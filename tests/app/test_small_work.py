"""Small torch work runs on threads with one torch thread each, leaving everyone else's count."""

from __future__ import annotations

import asyncio
import threading

import torch

from app.live_pool import live_pool
from app.small_work import run_small


def test_small_work_uses_one_torch_thread_and_leaves_the_default() -> None:
    before = torch.get_num_threads()
    assert asyncio.run(run_small(torch.get_num_threads)) == 1
    assert torch.get_num_threads() == before
    born_after: list[int] = []
    thread = threading.Thread(target=lambda: born_after.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert born_after == [before]  # a thread that starts later takes the server's count
    total = asyncio.run(
        run_small(lambda a, b: (a @ b).sum().item(), torch.ones(3, 4), b=torch.ones(4, 2))
    )
    assert total == 24.0


def test_live_prediction_threads_leave_the_count_later_threads_start_with() -> None:
    before = torch.get_num_threads()
    assert live_pool().submit(torch.get_num_threads).result() == 1
    born_after: list[int] = []
    thread = threading.Thread(target=lambda: born_after.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert born_after == [before]
