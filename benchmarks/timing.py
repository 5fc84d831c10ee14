"""Timing helpers shared by the benchmarks: one clock, one interleaving rule, one summary."""

import statistics
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


def spread(values: list[float]) -> dict[str, float]:
    """Median, p95 (nearest rank) and maximum, rounded to 0.1."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "max": round(ordered[-1], 1)}  # fmt: skip
