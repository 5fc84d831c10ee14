"""What both classroom hubs share (`app.sessions.InMemoryHub`, `app.sessions_postgres.PostgresHub`):
the refusals, an event held as its SSE frame and how one is made, the views and the quiz's
tally, join codes and teacher tokens, and a follower's subscription with its replay backlog.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.quiz import QuizQuestion, QuizRefused, count_answers, valid_answer

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


def new_teacher_token() -> tuple[str, bytes]:
    """A session's secret teacher token (shown to the teacher once) and the digest kept of it."""
    token = secrets.token_urlsafe(24)
    return token, _digest(token)


def check_teacher(digest: bytes, token: str) -> None:
    """Refuse (403) a token that is not the one whose digest the session keeps."""
    if not hmac.compare_digest(digest, _digest(token)):
        raise WrongTeacherToken("only the teacher who started this session can change it")


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
