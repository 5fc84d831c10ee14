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
the sessions through the database (`app.sessions_postgres.PostgresHub`); what both share
(refusals, events and their frames, followers' subscriptions) is `app.sessions_shared`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.quiz import QuizQuestion, count_answers
from app.runs.store import shared_database
from app.session_limits import HubLimits
from app.sessions_shared import (
    ClassEvent,
    ClassroomHub,
    NoPicture,
    QuizConflict,
    QuizTally,
    SessionPicture,
    SessionsFull,
    SessionView,
    Subscription,
    UnknownSession,
    backlog_for,
    check_teacher,
    checked_answer,
    encode_state,
    make_event,
    new_code,
    new_teacher_token,
    normalise_code,
    quiz_json,
    tally_of,
)
from app.settings import get_settings


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
        check_teacher(session.token_digest, token)
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
        token, digest = new_teacher_token()
        code = new_code(lambda c: c in self._sessions)
        self._sessions[code] = _ClassSession(
            code=code,
            token_digest=digest,
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
