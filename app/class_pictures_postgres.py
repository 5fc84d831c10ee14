"""The pictures a class sends into the teacher's dataset (`app.class_pictures`), shared by every
server worker (and host) through PostgreSQL, as the class sessions they belong to are
(`app.sessions_postgres`): a student's picture may reach one worker and the teacher's poll
and accept another.

- A link is a row of `class_picture_links` whose session row it references: a session that
  ends or expires (its `class_sessions` row deleted by any worker) takes its link and its queue
  with it (`ON DELETE CASCADE`), at once.
- A picture is a row of `class_pictures`: the kept PNG as bytea (and its size) while it waits,
  only its outcome once decided. Nothing is kept in the process: every answer comes from the
  database, the teacher's list without the PNGs.
- A submit inserts its picture first (sending the PNG in holds no lock), then takes one
  transaction-level advisory lock (PostgreSQL manual, "Advisory Locks") and counts, its own
  picture included, what waits for the student, the session and every session together,
  refusing (the insert rolled back) over a limit. The lock is held until the commit, so the
  checks of every worker's submits run one at a time and each sees what the ones before it
  committed: two workers cannot both take the last place of a student, a session or the bytes.
  A new link counts the links under the same lock.
- Row locks on the link (`FOR NO KEY UPDATE`, which a picture's foreign key check does not
  wait for): a submit takes it under the advisory lock and checks the link still names the
  dataset it read, so a relink to another dataset (which drops the queue under the same row
  lock) waits for the submit or is seen by it; a decision trims the session's decided outcomes
  under it. No writer that holds a link row's lock waits for the advisory lock (a relink takes
  none; a new link has no row yet), so the two never wait on each other in a cycle. Removals
  (decide, unlink, a session's end) only free room and take no advisory lock.
"""

from __future__ import annotations

import psycopg

from app.class_pictures import (
    ClassPictureError,
    ClassPictureLimits,
    Submission,
    check_room,
    closed,
    decided_already,
    links_full,
    new_submission_id,
    not_found,
)
from app.runs.store_postgres import _Pool
from app.sessions_postgres import _SCHEMA as _SESSIONS_SCHEMA
from app.sessions_postgres import _SCHEMA_LOCK
from cnncore.datasets.user_images import PreparedPicture

__all__ = ["PostgresClassPictures"]

_LIMITS_LOCK = 0x70696373  # "pics": the advisory lock every limit check takes
_SCHEMA = """
CREATE TABLE IF NOT EXISTS class_picture_links (
    code TEXT PRIMARY KEY REFERENCES class_sessions (code) ON DELETE CASCADE,
    dataset_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS class_pictures (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code TEXT NOT NULL REFERENCES class_picture_links (code) ON DELETE CASCADE,
    id TEXT NOT NULL,
    student TEXT NOT NULL,
    name TEXT NOT NULL,
    class_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size BIGINT NOT NULL,
    digest TEXT,
    png BYTEA,
    UNIQUE (code, id)
);
CREATE INDEX IF NOT EXISTS class_pictures_waiting ON class_pictures (code, student)
    WHERE status = 'pending';
"""
_COLUMNS = "id, student, name, class_id, width, height, status"


def _submission(row: tuple, picture: PreparedPicture | None = None) -> Submission:
    id_, student, name, class_id, width, height, status = row
    return Submission(id_, student, name, class_id, width, height, picture, status)


class PostgresClassPictures:
    """`ClassPictures` in PostgreSQL, for any number of workers and hosts."""

    blocking = True  # the routes call it from a thread

    def __init__(self, url: str, limits: ClassPictureLimits, pool_size: int = 4) -> None:
        self.limits = limits
        self._pool = _Pool(url, pool_size, 30.0)
        with self._pool.connection() as connection, connection.transaction():
            # the sessions' tables first (their rows are referenced), under their creation lock
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(_SESSIONS_SCHEMA)
            connection.execute(_SCHEMA)

    @property
    def held(self) -> int:
        with self._pool.connection() as connection:
            return self._held(connection)

    @staticmethod
    def _held(connection: psycopg.Connection) -> int:
        (held,) = connection.execute(
            "SELECT COALESCE(SUM(size), 0) FROM class_pictures WHERE status = 'pending'"
        ).fetchone()
        return int(held)

    @staticmethod
    def _dataset(connection: psycopg.Connection, code: str, lock: bool = False) -> str:
        row = connection.execute(
            "SELECT dataset_id FROM class_picture_links WHERE code = %s"
            + (" FOR NO KEY UPDATE" if lock else ""),
            (code,),
        ).fetchone()
        if row is None:
            raise closed()
        return row[0]

    def link(self, code: str, dataset_id: str) -> None:
        with self._pool.connection() as connection, connection.transaction():
            # the link row first, then the limits' lock: the order every writer keeps
            current = connection.execute(
                "SELECT dataset_id FROM class_picture_links WHERE code = %s FOR NO KEY UPDATE",
                (code,),
            ).fetchone()
            if current is not None:
                if current[0] != dataset_id:  # another dataset: what waited for the old goes
                    connection.execute("DELETE FROM class_pictures WHERE code = %s", (code,))
                    connection.execute("UPDATE class_picture_links SET dataset_id = %s "
                                       "WHERE code = %s", (dataset_id, code))  # fmt: skip
                return
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LIMITS_LOCK,))
            (count,) = connection.execute("SELECT count(*) FROM class_picture_links").fetchone()
            if count >= self.limits.links:
                raise links_full(self.limits)
            try:  # (the same session linked by another request meanwhile: that link stands)
                connection.execute("INSERT INTO class_picture_links (code, dataset_id) VALUES "
                                   "(%s, %s) ON CONFLICT (code) DO NOTHING",
                                   (code, dataset_id))  # fmt: skip
            except psycopg.errors.ForeignKeyViolation as exc:  # the session ended meanwhile
                raise ClassPictureError(404, "code", f"no class session has the code {code!r} "
                                        "(it may have ended)", "not_found") from exc  # fmt: skip

    def full(self) -> bool:
        with self._pool.connection() as connection:
            (count,) = connection.execute("SELECT count(*) FROM class_picture_links").fetchone()
        return count >= self.limits.links

    def codes(self) -> list[str]:
        with self._pool.connection() as connection:
            rows = connection.execute("SELECT code FROM class_picture_links").fetchall()
        return [code for (code,) in rows]

    def unlink(self, code: str) -> None:
        with self._pool.connection() as connection:
            connection.execute("DELETE FROM class_picture_links WHERE code = %s", (code,))

    def linked(self, code: str) -> str | None:
        try:
            return self.dataset_of(code)
        except ClassPictureError:
            return None

    def dataset_of(self, code: str) -> str:
        with self._pool.connection() as connection:
            return self._dataset(connection, code)

    def submit(self, code: str, student: str, name: str, class_id: int,
               picture: PreparedPicture) -> Submission:  # fmt: skip
        made = Submission(new_submission_id(), student, name, class_id, picture.width,
                          picture.height, None)  # fmt: skip
        size = len(picture.png)
        with self._pool.connection() as connection, connection.transaction():
            dataset_id = self._dataset(connection, code)
            try:  # the PNG goes in before any lock is taken
                connection.execute(
                    "INSERT INTO class_pictures (code, id, student, name, class_id, status, "
                    "width, height, size, digest, png) VALUES (%s, %s, %s, %s, %s, 'pending', "
                    "%s, %s, %s, %s, %s)",
                    (code, made.id, student, name, class_id, picture.width, picture.height,
                     size, picture.digest, picture.png),
                )  # fmt: skip
            except psycopg.errors.ForeignKeyViolation as exc:  # unlinked meanwhile
                raise closed() from exc
            # Then the limits, counted with it, by one submit at a time until its commit; the
            # link row too, so that a relink to another dataset waits or is seen.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LIMITS_LOCK,))
            if self._dataset(connection, code, lock=True) != dataset_id:
                raise closed()
            student_waiting, session_waiting, held = connection.execute(
                "SELECT count(*) FILTER (WHERE code = %s AND student = %s), "
                "count(*) FILTER (WHERE code = %s), COALESCE(SUM(size), 0) FROM class_pictures "
                "WHERE status = 'pending'", (code, student, code)).fetchone()  # fmt: skip
            check_room(self.limits, student_waiting - 1, session_waiting - 1, held - size, size)
        return made

    def mine(self, code: str, student: str) -> list[Submission]:
        with self._pool.connection() as connection, connection.transaction():
            self._dataset(connection, code)
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM class_pictures WHERE code = %s AND student = %s "
                "ORDER BY seq", (code, student)).fetchall()  # fmt: skip
        return [_submission(row) for row in rows]

    def pending(self, code: str) -> list[Submission]:
        with self._pool.connection() as connection, connection.transaction():
            self._dataset(connection, code)
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM class_pictures WHERE code = %s AND status = 'pending' "
                "ORDER BY seq", (code,)).fetchall()  # fmt: skip
        return [_submission(row) for row in rows]

    def waiting(self, code: str, submission_id: str) -> Submission:
        with self._pool.connection() as connection, connection.transaction():
            self._dataset(connection, code)
            row = connection.execute(
                f"SELECT {_COLUMNS}, digest, png FROM class_pictures WHERE code = %s AND id = %s",
                (code, submission_id)).fetchone()  # fmt: skip
        if row is None:
            raise not_found()
        found = _submission(row[:7])
        if found.status != "pending":
            raise decided_already(found.status)
        found.picture = PreparedPicture("picture", bytes(row[8]), row[7], found.width,
                                        found.height)  # fmt: skip
        return found

    def decide(self, code: str, submission_id: str, status: str) -> Submission:
        with self._pool.connection() as connection, connection.transaction():
            self._dataset(connection, code, lock=True)
            row = connection.execute(
                "UPDATE class_pictures SET status = %s, size = 0, digest = NULL, png = NULL "
                f"WHERE code = %s AND id = %s RETURNING {_COLUMNS}",
                (status, code, submission_id)).fetchone()  # fmt: skip
            if row is None:
                raise not_found()
            # at most `decided` outcomes kept: the newest ones
            keep = self.limits.decided
            connection.execute(
                "DELETE FROM class_pictures WHERE code = %s AND status <> 'pending' AND seq <= "
                "(SELECT seq FROM class_pictures WHERE code = %s AND status <> 'pending' "
                "ORDER BY seq DESC OFFSET %s LIMIT 1)", (code, code, keep))  # fmt: skip
        return _submission(row)

    def png(self, code: str, submission_id: str) -> bytes | None:
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT png FROM class_pictures WHERE code = %s AND id = %s AND png IS NOT NULL",
                (code, submission_id)).fetchone()  # fmt: skip
        return bytes(row[0]) if row else None

    def close(self) -> None:
        self._pool.close()
