"""Per-client quotas over time, so one client cannot fill a pool everyone shares.

`app.limits.ClientConcurrencyLimit` bounds what a client has in flight; a client that starts
run after run (each queued, each holding a slot of `max_queued_runs`), opens session after
session, reconnects followers in a loop or guesses session codes is bounded here instead: at
most `limit` events per `window` seconds per client address and group (a sliding-window log:
the times of the last `limit` events, so memory per client is bounded by the limit, and at most
`quota_clients` addresses are remembered per group, the least recently seen forgotten first).
Past it: 429 with `Retry-After`, the seconds until the oldest event leaves the window
(RFC 6585 §4, RFC 9110 §10.2.3).

| group | setting | window |
|---|---|---|
| `runs` (POST /api/runs) | `client_runs_per_hour` | 1 h |
| `sessions` (POST /api/sessions) | `client_sessions_per_hour` | 1 h |
| `follows` (a follower's stream) | `client_follows_per_minute` | 1 min |
| `heavy` (features, receptive fields) | `client_heavy_per_minute` | 1 min |
| `live` (POST /api/predict, POST /api/features/live) | `client_live_per_minute` | 1 min |
| `wrong_codes` (a session code that does not exist) | `client_wrong_codes_per_minute` | 1 min |

Like the other per-client limits, the counts live in this process (README, "Several workers").
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.deps import settings_dep
from app.limits import client_address
from app.settings import Settings, get_settings

AppSettings = Annotated[Settings, Depends(settings_dep)]

__all__ = [
    "FOLLOWER_SLOTS",
    "QUOTAS",
    "ClientSlots",
    "RateWindow",
    "charge",
    "client_quota",
    "follower_slot",
    "note_wrong_code",
    "reset_quotas",
    "too_many",
    "wrong_code_guard",
]

# group → (the setting holding its limit, the window in seconds, what it counts in words)
QUOTAS: dict[str, tuple[str, float, str]] = {
    "runs": ("client_runs_per_hour", 3600.0, "training runs started"),
    "sessions": ("client_sessions_per_hour", 3600.0, "class sessions opened"),
    "follows": ("client_follows_per_minute", 60.0, "follow connections"),
    "heavy": ("client_heavy_per_minute", 60.0, "heavy requests"),
    "live": ("client_live_per_minute", 60.0, "live predictions"),
    "wrong_codes": ("client_wrong_codes_per_minute", 60.0, "unknown session codes"),
}


class RateWindow:
    """At most `limit` events per `window` seconds per key (thread-safe)."""

    def __init__(self, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, window: float, now: float) -> deque[float]:
        times = self._events.get(key)
        if times is None:
            times = self._events[key] = deque()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)  # the least recently seen client
        self._events.move_to_end(key)
        while times and times[0] <= now - window:
            times.popleft()
        return times

    def wait(self, key: str, limit: int, window: float) -> float:
        """Seconds until `key` may have one more event (0: now), recording nothing."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, window, now)
            return 0.0 if len(times) < limit else times[-limit] + window - now

    def hit(self, key: str, limit: int, window: float) -> float:
        """Record one event if the quota allows it and return 0; else the seconds to wait."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, window, now)
            if len(times) >= limit:
                return times[-limit] + window - now
            times.append(now)
            while len(times) > limit:
                times.popleft()
            return 0.0


_WINDOWS: dict[str, RateWindow] = {}
_WINDOWS_LOCK = threading.Lock()


def _window(group: str, settings: Settings) -> RateWindow:
    with _WINDOWS_LOCK:
        if group not in _WINDOWS:
            _WINDOWS[group] = RateWindow(settings.quota_clients)
        return _WINDOWS[group]


def _limit(group: str, settings: Settings) -> tuple[int, float, str]:
    setting, window, what = QUOTAS[group]
    return getattr(settings, setting), window, what


def too_many(group: str, wait: float, settings: Settings) -> HTTPException:
    """The 429 of a spent quota, in the API's error shape."""
    limit, window, what = _limit(group, settings)
    retry_after = max(1, math.ceil(wait))
    span = "hour" if window >= 3600 else "minute"
    return HTTPException(
        429,
        detail=[{
            "loc": ["client"],
            "msg": f"at most {limit} {what} per {span} from one client; try again in "
                   f"{retry_after} s",
            "type": "too_many_requests",
            "ctx": {"retry_after": retry_after, "limit": limit},
        }],
        headers={"Retry-After": str(retry_after)},
    )  # fmt: skip


def charge(group: str, client: str, settings: Settings) -> None:
    """Count one event of `group` for `client`, or raise the 429 when its quota is spent."""
    limit, window, _ = _limit(group, settings)
    wait = _window(group, settings).hit(client, limit, window)
    if wait > 0:
        raise too_many(group, wait, settings)


def client_quota(group: str) -> Callable[[Request], None]:
    """A route dependency charging one event of `group` to the calling client."""

    def dependency(request: Request, settings: AppSettings) -> None:
        charge(group, client_address(request), settings)

    dependency.__name__ = f"quota_{group}"
    return dependency


class ClientSlots:
    """At most `limit` things held at once per client (thread-safe): a follower's stream
    holds one slot of `client_follower_slots` until it closes."""

    def __init__(self) -> None:
        self.held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, client: str, limit: int) -> bool:
        with self._lock:
            if self.held[client] >= limit:
                return False
            self.held[client] += 1
            return True

    def give(self, client: str) -> None:
        with self._lock:
            self.held[client] -= 1
            if self.held[client] <= 0:
                del self.held[client]


FOLLOWER_SLOTS = ClientSlots()


def follower_slot(request: Request, settings: Settings) -> Callable[[], None]:
    """Take one of this client's follower slots (429 when all are held); returns the call
    that gives it back, to run exactly once when the stream closes."""
    client, limit = client_address(request), settings.client_follower_slots
    if not FOLLOWER_SLOTS.take(client, limit):
        retry_after = settings.retry_after_seconds
        raise HTTPException(
            429,
            detail=[{"loc": ["client"], "type": "too_many_requests",
                     "msg": f"this client already follows with {limit} connections",
                     "ctx": {"retry_after": retry_after, "limit": limit}}],
            headers={"Retry-After": str(retry_after)},
        )  # fmt: skip
    given = threading.Event()

    def give_back() -> None:
        if not given.is_set():
            given.set()
            FOLLOWER_SLOTS.give(client)

    return give_back


async def wrong_code_guard(request: Request, settings: AppSettings) -> AsyncIterator[None]:
    """Route dependency of the session routes: a client that named too many unknown session
    codes lately waits (429) before it may try another, right or wrong (no oracle for a
    guesser); each unknown code (a 404 from the route) is counted."""
    limit, window, _ = _limit("wrong_codes", settings)
    client = client_address(request)
    wait = _window("wrong_codes", settings).wait(client, limit, window)
    if wait > 0:
        raise too_many("wrong_codes", wait, settings)
    try:
        yield
    except HTTPException as exc:
        if exc.status_code == 404:
            _window("wrong_codes", settings).hit(client, limit, window)
        raise


def note_wrong_code(request: Request, settings: Settings | None = None) -> None:
    """A session code that names no session: one more guess on this client's count."""
    settings = settings or get_settings()
    limit, window, _ = _limit("wrong_codes", settings)
    _window("wrong_codes", settings).hit(client_address(request), limit, window)


def reset_quotas() -> None:
    """Forget every count (tests, and a server's settings changing under it)."""
    with _WINDOWS_LOCK:
        _WINDOWS.clear()
    FOLLOWER_SLOTS.held.clear()
