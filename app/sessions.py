"""Classroom sessions: a teacher's page, state and player step, fanned out live to followers.

The teacher creates a session (a short join code plus a secret teacher token), then publishes
snapshots `{page, state, step}`. Every snapshot gets the next event id of its session; followers
subscribe and receive snapshots as Server-Sent Events. The SSE rules followed here (event ids,
reconnection with `Last-Event-ID`) are those of the WHATWG HTML Living Standard, section 9.2
"Server-sent events".

Every event is a *full* snapshot, never a diff, so a follower that missed events only needs the
newest one: a slow follower's mailbox drops its oldest events instead of blocking the teacher, and
a reconnecting follower whose `Last-Event-ID` is older than the replay ring simply gets the latest
snapshot.

One process holds the hub in memory (`InMemoryHub`, one uvicorn worker). With several workers a
teacher and a follower can land on different processes, so such a deployment needs a shared broker
(for example Redis pub/sub) implementing the same small `ClassroomHub` interface (issue 8).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sse_starlette.event import ServerSentEvent

from app.settings import Settings, get_settings

# Join codes are read off a projector and typed on phones: no 0/O or 1/I look-alikes.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 6  # 32**6 ≈ 1.07e9 codes: guessing one of 200 live sessions is hopeless


class SessionError(Exception):
    """A session request that cannot be served; `status_code` and `field` shape the HTTP answer."""

    status_code = 400
    field: str | None = None


class UnknownSession(SessionError):
    status_code = 404


class WrongTeacherToken(SessionError):
    status_code = 403


class SessionsFull(SessionError):
    status_code = 503


class StateTooLarge(SessionError):
    status_code = 413
    field = "state"


@dataclass(frozen=True)
class HubLimits:
    max_sessions: int
    max_followers: int
    max_state_bytes: int
    idle_seconds: float
    replay_events: int
    wake_seconds: float  # how often an idle follower checks whether its session has expired
    mailbox_events: int = 32  # per follower; the oldest go first when a follower falls behind

    @classmethod
    def from_settings(cls, settings: Settings) -> HubLimits:
        return cls(
            max_sessions=settings.max_class_sessions,
            max_followers=settings.max_session_followers,
            max_state_bytes=settings.max_session_state_bytes,
            idle_seconds=settings.session_idle_seconds,
            replay_events=settings.session_replay_events,
            wake_seconds=settings.session_ping_seconds,
        )


@dataclass(frozen=True)
class ClassEvent:
    """One snapshot of the teacher's page; `frame` is its SSE encoding, built once for all."""

    event_id: int
    page: str
    state: dict[str, Any]
    step: int | None
    frame: bytes


@dataclass(frozen=True)
class SessionView:
    code: str
    latest: ClassEvent
    followers: int


@dataclass
class _ClassSession:
    code: str
    token_digest: bytes
    latest: ClassEvent
    recent: deque[ClassEvent]
    last_active: float
    followers: set[Subscription] = field(default_factory=set)


class ClassroomHub(Protocol):
    """What the routes need from a hub; a shared broker for several workers implements the same."""

    def create(self, page: str, state: dict[str, Any]) -> tuple[SessionView, str]: ...

    def view(self, code: str) -> SessionView: ...

    def publish(self, code: str, token: str, page: str, state: dict[str, Any],
                step: int | None) -> ClassEvent: ...

    def subscribe(self, code: str, last_event_id: int | None) -> Subscription: ...

    def end(self, code: str, token: str) -> None: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normalise_code(code: str) -> str:
    """Codes are case-insensitive on input (students type them on phones)."""
    return code.strip().upper()


class Subscription:
    """One follower: a backlog to replay, then a bounded mailbox filled by the hub."""

    def __init__(self, hub: InMemoryHub, session: _ClassSession, backlog: list[ClassEvent]):
        self._hub = hub
        self._session = session
        self._mailbox: deque[ClassEvent] = deque(backlog, maxlen=hub.limits.mailbox_events)
        self._wake = asyncio.Event()
        self._ended = False
        self._closed = False

    def offer(self, event: ClassEvent) -> None:
        self._mailbox.append(event)  # a full deque drops its oldest: the newest snapshot wins
        self._wake.set()

    def end(self) -> None:
        """The session is over: deliver what is queued, then stop."""
        self._ended = True
        self._wake.set()

    def close(self) -> None:
        """Unregister (idempotent): the follower disconnected."""
        if not self._closed:
            self._closed = True
            self._session.followers.discard(self)

    async def events(self) -> AsyncIterator[ClassEvent]:
        """Snapshots in event-id order until the session ends; unregisters however it stops."""
        try:
            while True:
                while self._mailbox:
                    yield self._mailbox.popleft()
                if self._ended or self._closed:
                    return
                # No await between draining and clearing, so no wake-up can be lost here.
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._hub.limits.wake_seconds)
                except TimeoutError:
                    self._hub.sweep()  # an idle session must still expire for its followers
        finally:
            self.close()


class InMemoryHub:
    """Every live session of this process. Call it from the event loop's thread only (async
    routes): no method awaits, so each one is atomic with respect to the others, without locks."""

    def __init__(self, limits: HubLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._sessions: dict[str, _ClassSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def _event(self, event_id: int, page: str, state: dict[str, Any],
               step: int | None) -> ClassEvent:
        state_json = json.dumps(state, ensure_ascii=False, separators=(",", ":"),
                                allow_nan=False)
        if len(state_json.encode()) > self.limits.max_state_bytes:
            raise StateTooLarge(
                f"page state is {len(state_json.encode())} bytes as JSON; "
                f"the limit is {self.limits.max_state_bytes}")
        payload = json.dumps({"event_id": event_id, "page": page, "step": step},
                             ensure_ascii=False, separators=(",", ":"))
        payload = payload[:-1] + ',"state":' + state_json + "}"  # state serialised only once
        frame = ServerSentEvent(data=payload, id=str(event_id), event="state").encode()
        return ClassEvent(event_id, page, state, step, frame)

    def _new_code(self) -> str:
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in self._sessions:
                return code

    def _session(self, code: str) -> _ClassSession:
        self.sweep()
        session = self._sessions.get(normalise_code(code))
        if session is None:
            raise UnknownSession(f"no class session has the code {code!r} (it may have ended)")
        return session

    def _teacher_session(self, code: str, token: str) -> _ClassSession:
        session = self._session(code)
        if not hmac.compare_digest(session.token_digest, _digest(token)):
            raise WrongTeacherToken("only the teacher who started this session can change it")
        return session

    def sweep(self) -> None:
        """End every session whose teacher has been idle longer than the limit."""
        deadline = self._clock() - self.limits.idle_seconds
        for code in [c for c, s in self._sessions.items() if s.last_active < deadline]:
            self._finish(self._sessions.pop(code))

    @staticmethod
    def _finish(session: _ClassSession) -> None:
        for follower in list(session.followers):
            follower.end()

    def create(self, page: str, state: dict[str, Any]) -> tuple[SessionView, str]:
        """Open a session on the teacher's current page; returns its view and the secret token."""
        self.sweep()
        if len(self._sessions) >= self.limits.max_sessions:
            raise SessionsFull(f"the server already holds {self.limits.max_sessions} class "
                               "sessions; try again when one ends")
        first = self._event(1, page, state, None)
        token = secrets.token_urlsafe(24)
        code = self._new_code()
        self._sessions[code] = _ClassSession(
            code=code, token_digest=_digest(token), latest=first,
            recent=deque([first], maxlen=self.limits.replay_events), last_active=self._clock())
        return SessionView(code, first, 0), token

    def view(self, code: str) -> SessionView:
        session = self._session(code)
        return SessionView(session.code, session.latest, len(session.followers))

    def publish(self, code: str, token: str, page: str, state: dict[str, Any],
                step: int | None) -> ClassEvent:
        """The teacher's new snapshot: next event id, kept for replay, offered to every follower."""
        session = self._teacher_session(code, token)
        event = self._event(session.latest.event_id + 1, page, state, step)
        session.latest = event
        session.recent.append(event)
        session.last_active = self._clock()
        for follower in session.followers:
            follower.offer(event)
        return event

    def subscribe(self, code: str, last_event_id: int | None) -> Subscription:
        """Register a follower. Backlog: the events after `last_event_id` when the replay ring
        still holds them all, else the latest snapshot alone (it is complete by itself)."""
        session = self._session(code)
        if len(session.followers) >= self.limits.max_followers:
            raise SessionsFull(f"this session already has {self.limits.max_followers} followers")
        latest = session.latest.event_id
        if last_event_id is None or last_event_id > latest:
            backlog = [session.latest]  # a fresh follower, or an id from another server life
        elif session.recent[0].event_id <= last_event_id + 1:
            backlog = [e for e in session.recent if e.event_id > last_event_id]
        else:
            backlog = [session.latest]  # too old for the ring: a full-state event instead
        subscription = Subscription(self, session, backlog)
        session.followers.add(subscription)
        return subscription

    def end(self, code: str, token: str) -> None:
        """The teacher ends the session: followers get their queued events, then the end."""
        session = self._teacher_session(code, token)
        self._finish(self._sessions.pop(session.code))


_hub: InMemoryHub | None = None


async def get_hub() -> ClassroomHub:
    """The process-wide hub (a FastAPI dependency, async so that it runs on the event loop's
    thread like the hub itself; tests override it)."""
    global _hub
    if _hub is None:
        _hub = InMemoryHub(HubLimits.from_settings(get_settings()))
    return _hub
