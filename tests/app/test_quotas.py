"""The sliding-window quota (`app.quotas.RateWindow`) on a clock the test moves: exactly
`limit` events per window, the wait until the oldest leaves, bounded memory."""

import pytest

from app.quotas import QUOTAS, ClientSlots, RateWindow
from app.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_exactly_the_limit_per_window_and_the_wait_until_the_oldest_leaves():
    clock = Clock()
    window = RateWindow(max_keys=10, clock=clock)
    for second in range(3):
        clock.now = 1000.0 + second * 10
        assert window.hit("a", 3, 60.0) == 0.0
    clock.now = 1025.0
    assert window.hit("a", 3, 60.0) == pytest.approx(35.0)  # 1000 + 60 − 1025
    assert window.wait("a", 3, 60.0) == pytest.approx(35.0)
    assert window.hit("b", 3, 60.0) == 0.0  # another client has its own count
    clock.now = 1060.0  # the first event has left the window (t ≤ now − window)
    assert window.hit("a", 3, 60.0) == 0.0
    assert window.hit("a", 3, 60.0) == pytest.approx(10.0)  # 1010 + 60 − 1060


def test_memory_is_bounded_by_the_limit_and_the_clients_remembered():
    clock = Clock()
    window = RateWindow(max_keys=3, clock=clock)
    for client in "abcde":
        for _ in range(50):
            window.hit(client, 4, 60.0)
    assert list(window._events) == ["c", "d", "e"]  # the least recently seen forgotten
    assert all(len(times) == 4 for times in window._events.values())


def test_slots_are_taken_and_given_back():
    slots = ClientSlots()
    assert slots.take("a", 2) and slots.take("a", 2) and not slots.take("a", 2)
    assert slots.take("b", 2)
    slots.give("a")
    assert slots.take("a", 2)
    for _ in range(2):
        slots.give("a")
    assert "a" not in slots.held


def test_every_quota_is_a_setting():
    settings = Settings()
    for setting, window, _ in QUOTAS.values():
        assert getattr(settings, setting) >= 1 and window in (60.0, 3600.0)
