"""Timing helpers shared by the benchmarks: one clock, one interleaving rule."""

import time
from collections.abc import Callable


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(
    actions: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Time each action once per round, rounds after `warmup` untimed ones, so a burst of load
    from other work on a shared machine lands on all of them alike."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            times[name].append(seconds(action))
    return times
