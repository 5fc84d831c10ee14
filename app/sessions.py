"""Classroom sessions: a teacher's page, state and player step, fanned out live to followers,
and a live quiz (`app.quiz`) put to them.

The teacher creates a session (a short join code plus a secret teacher token), then publishes
snapshots `{page, state, step, quiz}`. Every snapshot gets the next event id of its session;
followers subscribe and receive snapshots as Server-Sent Events. The SSE rules followed here
(event ids, reconnection with `Last-Event-ID`) are those of the WHATWG HTML Living Standard,
section 9.2 "Server-sent events".

Every event is a *full* snapshot, never a diff (the quiz's question, or its worked answer once
revealed, included), so a follower that missed events only needs the newest one: a slow
follower's mailbox drops its oldest events instead of blocking the teacher, and a reconnecting
follower whose `Last-Event-ID` is older than the replay ring simply gets the latest snapshot.

Memory: an event is kept only as its encoded SSE frame (bytes; the parsed state would cost ~24
times as much), and a session's replay ring is bounded by the bytes of the frames it holds
(`replay_bytes`) as well as by their number, so `max_sessions` sessions at every limit fit
`class_memory_bytes` (checked when the settings load; measured in tests/app/test_sessions_memory).

One process holds the hub in memory (`InMemoryHub`) on SQLite; on PostgreSQL every worker shares
the sessions through the database (`app.sessions_postgres.PostgresHub`).
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

from app.quiz import QuizQuestion, QuizRefused, count_answers, valid_answer
from app.runs.store import shared_database
from app.session_limits import HubLimits
from app.settings import get_settings

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


class UnencodableState(SessionError):
    status_code = 422
    field = "state"


class NoPicture(SessionError):
    status_code = 404


class QuizConflict(SessionError):
    """An answer to a question that is no longer open, or a reveal of one already revealed."""

    status_code = 409


class QuizInvalid(SessionError):
    status_code = 422

    def __init__(self, refused: QuizRefused) -> None:
        super().__init__(str(refused))
        self.field = refused.field


_FRAME_TAIL = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ClassEvent:
    """One snapshot of the teacher's page, held only as its SSE frame (built once for all
    followers); `page`, `state`, `step` and `quiz` are read back from it when asked."""

    event_id: int
    frame: bytes
    data_start: int  # where the JSON payload starts in `frame`

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.frame[self.data_start : -len(_FRAME_TAIL)])

    @property
    def page(self) -> str:
        return self.payload["page"]

    @property
    def state(self) -> dict[str, Any]:
        return self.payload["state"]

    @property
    def step(self) -> int | None:
        return self.payload["step"]

    @property
    def quiz(self) -> dict[str, Any] | None:
        return self.payload["quiz"]


def encode_state(state: dict[str, Any], limit: int) -> bytes:
    """The page state as UTF-8 JSON, within `limit` bytes (413), encodable (422)."""
    try:
        data = json.dumps(state, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()  # fmt: skip
    except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate, NaN
        raise UnencodableState(f"the page state cannot be sent on as UTF-8 JSON: {exc}") from exc
    if len(data) > limit:
        raise StateTooLarge(f"page state is {len(data)} bytes as JSON; the limit is {limit}")
    return data


def make_event(event_id: int, page: str, step: int | None, state_json: bytes,
               quiz_json: bytes | None, picture: int | None = None) -> ClassEvent:  # fmt: skip
    """The event's SSE frame: `id`, `event: state` and one `data` line of JSON (JSON text holds
    no raw line breaks, so one line is always enough). The state is spliced in as encoded.
    `picture`: the version of the teacher's picture in the session's slot, once there is one."""
    head = f"id: {event_id}\r\nevent: state\r\ndata: ".encode()
    fields = {"event_id": event_id, "page": page, "step": step}
    if picture is not None:
        fields["picture"] = picture
    fields = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    payload = b"".join((fields[:-1], b',"quiz":', quiz_json or b"null", b',"state":',
                        state_json, b"}"))  # fmt: skip
    return ClassEvent(event_id, head + payload + _FRAME_TAIL, len(head))


def quiz_json(quiz_id: int, question: QuizQuestion, revealed: bool,
              spread: list[list] | None = None) -> bytes:  # fmt: skip
    """The quiz as followers see it: the question (and, once revealed, the worked answer and
    the class's spread)."""
    parts = [f'{{"id":{quiz_id},"status":"{"revealed" if revealed else "open"}","question":'
             .encode(), question.public]  # fmt: skip
    if revealed:
        parts += [b',"worked":', question.worked, b',"spread":',
                  json.dumps(spread or [], separators=(",", ":")).encode()]  # fmt: skip
    return b"".join(parts) + b"}"


@dataclass(frozen=True, slots=True)
class SessionPicture:
    """The teacher's own picture, shared with the class: its bytes as the teacher's page sent
    them (bounded by `picture_bytes`), their media type, and a version that grows per picture."""

    version: int
    media_type: str
    data: bytes


@dataclass(frozen=True)
class SessionView:
    code: str
    latest: ClassEvent
    followers: int


@dataclass(frozen=True)
class QuizTally:
    """What the teacher sees of the question being asked: the spread of the answers so far."""

    quiz_id: int
    kind: str
    status: str  # "open" or "revealed"
    answered: int
    spread: list[list]  # [value, count] pairs (numbers) or [index, count] (choices)
    correct: int  # answers equal to the worked answer (shown to the teacher after the reveal)


def tally_of(quiz_id: int, question: QuizQuestion, revealed: bool,
             values: list[float | int]) -> QuizTally:  # fmt: skip
    return QuizTally(quiz_id, question.kind, "revealed" if revealed else "open", len(values),
                     count_answers(question, values),
                     sum(question.is_correct(v) for v in values))  # fmt: skip


@dataclass(slots=True)
class _Quiz:
    quiz_id: int
    question: QuizQuestion
    revealed: bool = False
    answers: dict[str, float | int] = field(default_factory=dict)  # student id → answer


@dataclass
class _ClassSession:
    code: str
    token_digest: bytes
    latest: ClassEvent
    state_json: bytes
    recent: deque[ClassEvent]
    last_active: float
    recent_bytes: int = 0
    quiz: _Quiz | None = None
    quizzes: int = 0  # questions asked so far: the next quiz id
    picture: SessionPicture | None = None  # the teacher's own picture (/features), if shared
    followers: set[Subscription] = field(default_factory=set)


class ClassroomHub(Protocol):
    """What the routes need from a hub (in memory, or shared through PostgreSQL)."""

    def create(self, page: str, state: dict[str, Any]) -> tuple[SessionView, str]: ...

    def view(self, code: str) -> SessionView: ...

    def publish(self, code: str, token: str, page: str, state: dict[str, Any],
                step: int | None) -> ClassEvent: ...  # fmt: skip

    def subscribe(self, code: str, last_event_id: int | None) -> Subscription: ...

    def end(self, code: str, token: str) -> None: ...

    def ask(self, code: str, token: str, question: QuizQuestion) -> ClassEvent: ...

    def answer(self, code: str, quiz_id: int, student: str, value: Any) -> float | int: ...

    def tally(self, code: str, token: str) -> QuizTally | None: ...

    def reveal(self, code: str, token: str, quiz_id: int) -> ClassEvent: ...

    def close_quiz(self, code: str, token: str) -> ClassEvent: ...

    def set_picture(self, code: str, token: str, data: bytes, media_type: str) -> ClassEvent: ...

    def picture(self, code: str) -> SessionPicture: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normalise_code(code: str) -> str:
    """Codes are case-insensitive on input (students type them on phones)."""
    return code.strip().upper()


def new_code(taken: Callable[[str], bool]) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if not taken(code):
            return code


def checked_answer(question: QuizQuestion, value: Any) -> float | int:
    try:
        return valid_answer(question, value)
    except QuizRefused as exc:
        raise QuizInvalid(exc) from exc


class Subscription:
    """One follower: a backlog to replay, then a bounded mailbox filled by the hub."""

    def __init__(self, hub: Any, followers: set[Subscription], backlog: list[ClassEvent]):
        self._hub = hub
        self._followers = followers
        self._mailbox: deque[ClassEvent] = deque(backlog, maxlen=hub.limits.mailbox_events)
        # The newest event handed over: a shared hub may offer again what the backlog held.
        self._last = backlog[-1].event_id if backlog else -1
        self._wake = asyncio.Event()
        self._ended = False
        self._closed = False

    def offer(self, event: ClassEvent) -> None:
        if event.event_id <= self._last:
            return
        self._last = event.event_id
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
            self._followers.discard(self)

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


def backlog_for(recent: deque[ClassEvent], latest: ClassEvent,
                last_event_id: int | None) -> list[ClassEvent]:  # fmt: skip
    """The events after `last_event_id` when the replay ring still holds them all, else the
    latest snapshot alone (it is complete by itself)."""
    if last_event_id is None or last_event_id > latest.event_id:
        return [latest]  # a fresh follower, or an id from another server life
    if recent and recent[0].event_id <= last_event_id + 1:
        return [e for e in recent if e.event_id > last_event_id]
    return [latest]  # too old for the ring: a full-state event instead


class InMemoryHub:
    """Every live session of this process. Call it from the event loop's thread only (async
    routes): no method awaits, so each one is atomic with respect to the others, without locks."""

    def __init__(self, limits: HubLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._sessions: dict[str, _ClassSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

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
                               "sessions; try again when one ends")  # fmt: skip
        state_json = encode_state(state, self.limits.max_state_bytes)
        first = make_event(1, page, None, state_json, None)
        token = secrets.token_urlsafe(24)
        code = new_code(lambda c: c in self._sessions)
        self._sessions[code] = _ClassSession(
            code=code,
            token_digest=_digest(token),
            latest=first,
            state_json=state_json,
            recent=deque([first]),
            recent_bytes=len(first.frame),
            last_active=self._clock(),
        )
        return SessionView(code, first, 0), token

    def view(self, code: str) -> SessionView:
        session = self._session(code)
        return SessionView(session.code, session.latest, len(session.followers))

    def _quiz_json(self, session: _ClassSession) -> bytes | None:
        quiz = session.quiz
        if quiz is None:
            return None
        spread = count_answers(quiz.question, quiz.answers.values()) if quiz.revealed else None
        return quiz_json(quiz.quiz_id, quiz.question, quiz.revealed, spread)

    def _emit(self, session: _ClassSession, page: str, step: int | None) -> ClassEvent:
        """The next snapshot: kept for replay (within the ring's bytes) and sent to all."""
        picture = session.picture.version if session.picture else None
        event = make_event(session.latest.event_id + 1, page, step, session.state_json,
                           self._quiz_json(session), picture)  # fmt: skip
        session.latest = event
        session.recent.append(event)
        session.recent_bytes += len(event.frame)
        while len(session.recent) > 1 and (
            len(session.recent) > self.limits.replay_events
            or session.recent_bytes > self.limits.replay_bytes
        ):
            session.recent_bytes -= len(session.recent.popleft().frame)
        session.last_active = self._clock()
        for follower in session.followers:
            follower.offer(event)
        return event

    def publish(self, code: str, token: str, page: str, state: dict[str, Any],
                step: int | None) -> ClassEvent:  # fmt: skip
        """The teacher's new snapshot: next event id, kept for replay, offered to every follower."""
        session = self._teacher_session(code, token)
        session.state_json = encode_state(state, self.limits.max_state_bytes)
        return self._emit(session, page, step)

    def subscribe(self, code: str, last_event_id: int | None) -> Subscription:
        """Register a follower, with the backlog it missed (`backlog_for`)."""
        session = self._session(code)
        if len(session.followers) >= self.limits.max_followers:
            raise SessionsFull(f"this session already has {self.limits.max_followers} followers")
        backlog = backlog_for(session.recent, session.latest, last_event_id)
        subscription = Subscription(self, session.followers, backlog)
        session.followers.add(subscription)
        return subscription

    def end(self, code: str, token: str) -> None:
        """The teacher ends the session: followers get their queued events, then the end."""
        session = self._teacher_session(code, token)
        self._finish(self._sessions.pop(session.code))

    # --- the teacher's own picture --------------------------------------------------------

    def set_picture(self, code: str, token: str, data: bytes, media_type: str) -> ClassEvent:
        """Put the teacher's picture in the session's one slot (replacing the last one); every
        snapshot from now on names its version, and followers fetch it."""
        session = self._teacher_session(code, token)
        version = session.picture.version + 1 if session.picture else 1
        session.picture = SessionPicture(version, media_type, bytes(data))
        return self._again(session)

    def picture(self, code: str) -> SessionPicture:
        picture = self._session(code).picture
        if picture is None:
            raise NoPicture("the teacher has not shared a picture in this session")
        return picture

    # --- the live quiz (app.quiz) ---------------------------------------------------------

    def _again(self, session: _ClassSession) -> ClassEvent:
        latest = session.latest
        return self._emit(session, latest.page, latest.step)

    def ask(self, code: str, token: str, question: QuizQuestion) -> ClassEvent:
        """Put `question` to the class (replacing any question asked before)."""
        session = self._teacher_session(code, token)
        session.quizzes += 1
        session.quiz = _Quiz(session.quizzes, question)
        return self._again(session)

    def _open_quiz(self, session: _ClassSession, quiz_id: int) -> _Quiz:
        quiz = session.quiz
        if quiz is None or quiz.quiz_id != quiz_id:
            raise QuizConflict("that question is no longer asked")
        if quiz.revealed:
            raise QuizConflict("the answer has been revealed: answers are closed")
        return quiz

    def answer(self, code: str, quiz_id: int, student: str, value: Any) -> float | int:
        """A student's answer (one per student id; a second one replaces the first), as
        stored: the number, or the option's index."""
        session = self._session(code)
        quiz = self._open_quiz(session, quiz_id)
        checked = checked_answer(quiz.question, value)
        if student not in quiz.answers and len(quiz.answers) >= self.limits.max_quiz_answers:
            raise QuizConflict(f"this question already has {self.limits.max_quiz_answers} "
                               "answers")  # fmt: skip
        quiz.answers[student] = checked
        return checked

    def tally(self, code: str, token: str) -> QuizTally | None:
        quiz = self._teacher_session(code, token).quiz
        if quiz is None:
            return None
        return tally_of(quiz.quiz_id, quiz.question, quiz.revealed, list(quiz.answers.values()))

    def reveal(self, code: str, token: str, quiz_id: int) -> ClassEvent:
        """Close the answers and show everyone the worked answer and the class's spread."""
        session = self._teacher_session(code, token)
        self._open_quiz(session, quiz_id).revealed = True
        return self._again(session)

    def close_quiz(self, code: str, token: str) -> ClassEvent:
        """Take the question (and its answers) away."""
        session = self._teacher_session(code, token)
        session.quiz = None
        return self._again(session)


_hub: ClassroomHub | None = None


async def get_hub() -> ClassroomHub:
    """The process-wide hub (a FastAPI dependency, async so that it runs on the event loop's
    thread like the hub itself; tests override it): in this process's memory, or shared by every
    worker through PostgreSQL when the database is PostgreSQL."""
    global _hub
    if _hub is None:
        settings = get_settings()
        limits = HubLimits.from_settings(settings)
        if shared_database(settings.database_url):
            from app.sessions_postgres import PostgresHub

            _hub = PostgresHub(settings.database_url, limits, asyncio.get_running_loop(),
                               settings.session_poll_seconds,
                               pool_size=settings.database_pool_size)  # fmt: skip
        else:
            _hub = InMemoryHub(limits)
    return _hub
