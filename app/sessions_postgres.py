"""Class sessions shared by every server worker (and host) through PostgreSQL.

With several workers a teacher and each student may reach different processes, so a session,
its events, its question and the students' answers live in the database (the one the runs use,
`CNNVIZ_DATABASE_URL=postgresql://…`): the same meaning and the same SSE frames as
`app.sessions.InMemoryHub`, byte for byte (both build them with `app.sessions_shared`).

- Event ids are assigned under a row lock on the session (`SELECT … FOR UPDATE`), so publishes
  from any worker get unique, contiguous ids; the frame is stored as encoded (bytea), and the
  replay ring is trimmed to `replay_events` and `replay_bytes` in the same transaction.
- A publish raises `NOTIFY cnnviz_class` (PostgreSQL manual, "NOTIFY"). Each worker's listener
  thread `LISTEN`s, wakes, and reads the new frames of the sessions its own followers follow,
  then hands them to those followers on the event loop; it also looks every `poll_seconds`
  without a notification (one lost while reconnecting is found then), ends the followers of
  sessions that are gone, expires idle sessions and writes how many followers it holds.
- Answers are rows (one per session, question and student), counted under the session's lock.

Routes call the blocking methods through a thread (`blocking = True`); `subscribe` registers a
follower with this worker's listener on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
from collections import deque
from typing import Any

import psycopg

from app.quiz import QuizQuestion, count_answers, quiz_question
from app.runs.store_postgres import _Pool
from app.session_limits import HubLimits
from app.sessions_shared import (
    ClassEvent,
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

__all__ = ["PostgresHub"]

log = logging.getLogger(__name__)

CHANNEL = "cnnviz_class"
_SCHEMA_LOCK = 0x636C6173  # "clas": workers starting together create the tables once
_SCHEMA = """
CREATE TABLE IF NOT EXISTS class_sessions (
    code TEXT PRIMARY KEY,
    token_digest BYTEA NOT NULL,
    last_event_id BIGINT NOT NULL,
    page TEXT NOT NULL,
    step BIGINT,
    state_json BYTEA NOT NULL,
    quizzes BIGINT NOT NULL DEFAULT 0,
    quiz_id BIGINT,
    quiz_ref TEXT,
    quiz_revealed BOOLEAN NOT NULL DEFAULT FALSE,
    picture_version BIGINT NOT NULL DEFAULT 0,
    picture_type TEXT,
    picture BYTEA,
    last_active DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS class_events (
    code TEXT NOT NULL REFERENCES class_sessions (code) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
    frame BYTEA NOT NULL,
    PRIMARY KEY (code, event_id)
);
CREATE TABLE IF NOT EXISTS class_answers (
    code TEXT NOT NULL REFERENCES class_sessions (code) ON DELETE CASCADE,
    quiz_id BIGINT NOT NULL,
    student TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (code, quiz_id, student)
);
CREATE TABLE IF NOT EXISTS class_followers (
    code TEXT NOT NULL REFERENCES class_sessions (code) ON DELETE CASCADE,
    worker TEXT NOT NULL,
    followers INTEGER NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (code, worker)
);
"""
_SESSION = (
    "code, last_event_id, page, step, state_json, quiz_id, quiz_ref, quiz_revealed, picture_version"
)


def _frame_event(event_id: int, frame: bytes) -> ClassEvent:
    frame = bytes(frame)
    return ClassEvent(event_id, frame, frame.index(b"data: ") + len(b"data: "))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class PostgresHub:
    """`ClassroomHub` over PostgreSQL, for any number of workers and hosts."""

    blocking = True  # routes call it from a thread (every method but `subscribe` and `sweep`)

    def __init__(self, url: str, limits: HubLimits, loop: asyncio.AbstractEventLoop,
                 poll_seconds: float = 1.0, pool_size: int = 4) -> None:  # fmt: skip
        self.limits = limits
        self.url = url
        self.worker = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"
        self._loop = loop
        self._poll = poll_seconds
        self._pool = _Pool(url, pool_size, 30.0)
        with self._pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(_SCHEMA)
        # This worker's followers, by session (event loop's thread only), and the newest event
        # id each session's followers have been handed (the listener thread's).
        self._followers: dict[str, set[Subscription]] = {}
        self._delivered: dict[str, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="class-hub", daemon=True)
        self._thread.start()

    # --- the database side: called from threads -------------------------------------------

    def _row(self, connection: psycopg.Connection, code: str, lock: bool = False) -> tuple:
        row = connection.execute(
            f"SELECT {_SESSION}, token_digest FROM class_sessions WHERE code = %s"
            + (" FOR UPDATE" if lock else ""),
            (normalise_code(code),),
        ).fetchone()
        if row is None:
            raise UnknownSession(f"no class session has the code {code!r} (it may have ended)")
        return row

    def _teacher_row(self, connection: psycopg.Connection, code: str, token: str,
                     lock: bool = True) -> tuple:  # fmt: skip
        row = self._row(connection, code, lock=lock)
        check_teacher(bytes(row[-1]), token)
        return row

    def _quiz_bytes(self, connection: psycopg.Connection, row: tuple) -> bytes | None:
        code, quiz_id, ref, revealed = row[0], row[5], row[6], row[7]
        if quiz_id is None:
            return None
        question = quiz_question(ref)
        spread = None
        if revealed:
            spread = count_answers(question, self._answers(connection, code, quiz_id, question))
        return quiz_json(quiz_id, question, revealed, spread)

    @staticmethod
    def _answers(connection: psycopg.Connection, code: str, quiz_id: int,
                 question: QuizQuestion) -> list[float | int]:  # fmt: skip
        rows = connection.execute(
            "SELECT value FROM class_answers WHERE code = %s AND quiz_id = %s", (code, quiz_id)
        ).fetchall()
        return [int(v) if question.kind == "choice" else _number(v) for (v,) in rows]

    def _emit(self, connection: psycopg.Connection, row: tuple, page: str, step: int | None,
              state_json: bytes) -> ClassEvent:  # fmt: skip
        """The session's next event, inside the caller's transaction (the row is locked)."""
        code = row[0]
        event = make_event(row[1] + 1, page, step, state_json, self._quiz_bytes(connection, row),
                           row[8] or None)  # fmt: skip
        connection.execute(
            "INSERT INTO class_events (code, event_id, frame) VALUES (%s, %s, %s)",
            (code, event.event_id, event.frame),
        )
        connection.execute(
            "UPDATE class_sessions SET last_event_id = %s, page = %s, step = %s, "
            "state_json = %s, last_active = %s WHERE code = %s",
            (event.event_id, page, step, state_json, time.time(), code),
        )
        # The replay ring: at most replay_events events and replay_bytes bytes (the newest kept).
        connection.execute(
            "DELETE FROM class_events WHERE code = %s AND event_id < %s AND ("
            "event_id <= %s OR event_id <= (SELECT COALESCE(MAX(event_id), 0) FROM ("
            "SELECT event_id, SUM(octet_length(frame)) OVER (ORDER BY event_id DESC) AS tail "
            "FROM class_events WHERE code = %s) AS ring WHERE tail > %s))",
            (code, event.event_id, event.event_id - self.limits.replay_events, code,
             self.limits.replay_bytes),
        )  # fmt: skip
        connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, code))
        return event

    def _expire(self, connection: psycopg.Connection) -> list[str]:
        rows = connection.execute(
            "DELETE FROM class_sessions WHERE last_active < %s RETURNING code",
            (time.time() - self.limits.idle_seconds,),
        ).fetchall()
        for (code,) in rows:
            connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, code))
        return [code for (code,) in rows]

    def create(self, page: str, state: dict[str, Any]) -> tuple[SessionView, str]:
        state_json = encode_state(state, self.limits.max_state_bytes)
        token, digest = new_teacher_token()
        first = make_event(1, page, None, state_json, None)
        with self._pool.connection() as connection, connection.transaction():
            self._expire(connection)
            connection.execute("LOCK TABLE class_sessions IN SHARE ROW EXCLUSIVE MODE")
            (count,) = connection.execute("SELECT count(*) FROM class_sessions").fetchone()
            if count >= self.limits.max_sessions:
                raise SessionsFull(f"the server already holds {self.limits.max_sessions} class "
                                   "sessions; try again when one ends")  # fmt: skip

            def taken(candidate: str) -> bool:
                found = connection.execute(
                    "SELECT 1 FROM class_sessions WHERE code = %s", (candidate,)
                ).fetchone()
                return found is not None

            code = new_code(taken)
            connection.execute(
                "INSERT INTO class_sessions (code, token_digest, last_event_id, page, step, "
                "state_json, last_active) VALUES (%s, %s, 1, %s, NULL, %s, %s)",
                (code, digest, page, state_json, time.time()),
            )
            connection.execute("INSERT INTO class_events (code, event_id, frame) VALUES "
                               "(%s, 1, %s)", (code, first.frame))  # fmt: skip
        return SessionView(code, first, 0), token

    def _followers_of(self, connection: psycopg.Connection, code: str) -> int:
        (count,) = connection.execute(
            "SELECT COALESCE(SUM(followers), 0) FROM class_followers WHERE code = %s "
            "AND seen_at > %s", (code, time.time() - 3 * self._poll - 1)).fetchone()  # fmt: skip
        return int(count)

    def view(self, code: str) -> SessionView:
        with self._pool.connection() as connection:
            row = self._row(connection, code)
            frame = connection.execute(
                "SELECT frame FROM class_events WHERE code = %s AND event_id = %s", row[:2]
            ).fetchone()
            followers = self._followers_of(connection, row[0])
        return SessionView(row[0], _frame_event(row[1], frame[0]), followers)

    def publish(self, code: str, token: str, page: str, state: dict[str, Any],
                step: int | None) -> ClassEvent:  # fmt: skip
        state_json = encode_state(state, self.limits.max_state_bytes)
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            return self._emit(connection, row, page, step, state_json)

    def end(self, code: str, token: str) -> None:
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            connection.execute("DELETE FROM class_sessions WHERE code = %s", (row[0],))
            connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, row[0]))

    def _again(self, connection: psycopg.Connection, code: str) -> ClassEvent:
        row = self._row(connection, code)
        return self._emit(connection, row, row[2], row[3], bytes(row[4]))

    def ask(self, code: str, token: str, question: QuizQuestion) -> ClassEvent:
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            connection.execute(
                "UPDATE class_sessions SET quizzes = quizzes + 1, quiz_id = quizzes + 1, "
                "quiz_ref = %s, quiz_revealed = FALSE WHERE code = %s",
                (question.ref, row[0]),
            )
            connection.execute("DELETE FROM class_answers WHERE code = %s", (row[0],))
            return self._again(connection, row[0])

    def set_picture(self, code: str, token: str, data: bytes, media_type: str) -> ClassEvent:
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            connection.execute(
                "UPDATE class_sessions SET picture = %s, picture_type = %s, "
                "picture_version = picture_version + 1 WHERE code = %s",
                (data, media_type, row[0]))  # fmt: skip
            return self._again(connection, row[0])

    def picture(self, code: str) -> SessionPicture:
        with self._pool.connection() as connection:
            row = self._row(connection, code)
            found = connection.execute(
                "SELECT picture_version, picture_type, picture FROM class_sessions "
                "WHERE code = %s AND picture IS NOT NULL", (row[0],)).fetchone()  # fmt: skip
        if found is None:
            raise NoPicture("the teacher has not shared a picture in this session")
        return SessionPicture(found[0], found[1], bytes(found[2]))

    def _open_quiz(self, row: tuple, quiz_id: int) -> QuizQuestion:
        if row[5] is None or row[5] != quiz_id:
            raise QuizConflict("that question is no longer asked")
        if row[7]:
            raise QuizConflict("the answer has been revealed: answers are closed")
        return quiz_question(row[6])

    def answer(self, code: str, quiz_id: int, student: str, value: Any) -> float | int:
        with self._pool.connection() as connection, connection.transaction():
            row = self._row(connection, code, lock=True)
            checked = checked_answer(self._open_quiz(row, quiz_id), value)
            new = connection.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM class_answers WHERE code = %s AND quiz_id = %s "
                "AND student = %s)", (row[0], quiz_id, student)).fetchone()[0]  # fmt: skip
            if new:
                (count,) = connection.execute(
                    "SELECT count(*) FROM class_answers WHERE code = %s AND quiz_id = %s",
                    (row[0], quiz_id)).fetchone()  # fmt: skip
                if count >= self.limits.max_quiz_answers:
                    raise QuizConflict(f"this question already has "
                                       f"{self.limits.max_quiz_answers} answers")  # fmt: skip
            connection.execute(
                "INSERT INTO class_answers (code, quiz_id, student, value) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (code, quiz_id, student) DO UPDATE SET value = EXCLUDED.value",
                (row[0], quiz_id, student, float(checked)))  # fmt: skip
        return checked

    def tally(self, code: str, token: str) -> QuizTally | None:
        # A read: no lock, so the teacher's polls and the students' answers never wait on
        # each other (the answers of one snapshot of the table, in one transaction).
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token, lock=False)
            if row[5] is None:
                return None
            question = quiz_question(row[6])
            values = self._answers(connection, row[0], row[5], question)
        return tally_of(row[5], question, row[7], values)

    def reveal(self, code: str, token: str, quiz_id: int) -> ClassEvent:
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            self._open_quiz(row, quiz_id)
            connection.execute("UPDATE class_sessions SET quiz_revealed = TRUE WHERE code = %s",
                               (row[0],))  # fmt: skip
            return self._again(connection, row[0])

    def close_quiz(self, code: str, token: str) -> ClassEvent:
        with self._pool.connection() as connection, connection.transaction():
            row = self._teacher_row(connection, code, token)
            connection.execute(
                "UPDATE class_sessions SET quiz_id = NULL, quiz_ref = NULL, "
                "quiz_revealed = FALSE WHERE code = %s", (row[0],))  # fmt: skip
            connection.execute("DELETE FROM class_answers WHERE code = %s", (row[0],))
            return self._again(connection, row[0])

    # --- this worker's followers: the event loop's thread ---------------------------------

    def subscribe(self, code: str, last_event_id: int | None) -> Subscription:
        """Register a follower on this worker, with the backlog it missed from the database."""
        with self._pool.connection() as connection:
            row = self._row(connection, code)
            if self._followers_of(connection, row[0]) >= self.limits.max_followers:
                raise SessionsFull(
                    f"this session already has {self.limits.max_followers} followers"
                )
            frames = connection.execute(
                "SELECT event_id, frame FROM class_events WHERE code = %s ORDER BY event_id",
                (row[0],)).fetchall()  # fmt: skip
        recent = deque(_frame_event(event_id, frame) for event_id, frame in frames)
        latest = recent[-1]
        followers = self._followers.setdefault(row[0], set())
        subscription = Subscription(self, followers, backlog_for(recent, latest, last_event_id))
        followers.add(subscription)
        self._delivered.setdefault(row[0], latest.event_id)
        return subscription

    def sweep(self) -> None:
        """Expiry is the listener thread's (it holds no lock a follower could wait on)."""

    def _hand_out(self, code: str, events: list[ClassEvent], ended: bool) -> None:
        for follower in list(self._followers.get(code, ())):
            for event in events:
                follower.offer(event)
            if ended:
                follower.end()
        if ended:
            self._followers.pop(code, None)

    # --- the listener thread ----------------------------------------------------------------

    def _listen(self) -> None:
        listener: psycopg.Connection | None = None
        while not self._stopped.is_set():
            try:
                if listener is None:
                    listener = psycopg.connect(self.url, autocommit=True)
                    listener.execute(f"LISTEN {CHANNEL}")
                self._relay()
                for _ in listener.notifies(timeout=self._poll, stop_after=1):
                    pass
                with contextlib.suppress(Exception):  # drain what else arrived meanwhile
                    for _ in listener.notifies(timeout=0.001):
                        pass
            except Exception:  # the database away: keep trying, followers keep their streams
                if self._stopped.is_set():
                    break
                log.exception("class sessions: listening failed; retrying")
                if listener is not None:
                    listener.close()
                    listener = None
                self._stopped.wait(self._poll)
        if listener is not None:
            listener.close()

    def _relay(self) -> None:
        """New frames of the sessions this worker's followers follow; their end; counts."""
        followed = {code: len(subs) for code, subs in list(self._followers.items())}
        with self._pool.connection() as connection, connection.transaction():
            self._expire(connection)
            for code, count in followed.items():
                after = self._delivered.get(code, 0)
                alive = connection.execute("SELECT 1 FROM class_sessions WHERE code = %s",
                                           (code,)).fetchone() is not None  # fmt: skip
                rows = connection.execute(
                    "SELECT event_id, frame FROM class_events WHERE code = %s AND event_id > %s "
                    "ORDER BY event_id", (code, after)).fetchall()  # fmt: skip
                events = [_frame_event(event_id, frame) for event_id, frame in rows]
                if events:
                    self._delivered[code] = events[-1].event_id
                if events or not alive:
                    self._loop.call_soon_threadsafe(self._hand_out, code, events, not alive)
                if not alive:
                    self._delivered.pop(code, None)
                    continue
                connection.execute(
                    "INSERT INTO class_followers (code, worker, followers, seen_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (code, worker) DO UPDATE SET "
                    "followers = EXCLUDED.followers, seen_at = EXCLUDED.seen_at",
                    (code, self.worker, count, time.time()))  # fmt: skip
            for code in [c for c, subs in list(self._followers.items()) if not subs]:
                self._loop.call_soon_threadsafe(self._forget, code)

    def _forget(self, code: str) -> None:
        if not self._followers.get(code):
            self._followers.pop(code, None)
            self._delivered.pop(code, None)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._poll + 2)
        self._pool.close()
