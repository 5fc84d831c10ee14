"""A class builds a dataset together (issue 15, part 5): in follow mode, students send pictures
from their phones into the dataset their teacher linked to the class session; each picture
waits in the session's queue until the teacher accepts it (it joins the dataset: a new version,
a duplicate found as for any upload) or rejects it; the student sees the outcome.

A student never writes to the dataset: only the teacher's accept does, with both the session's
teacher token and the dataset's owner token (app/routes/class_pictures.py). A waiting picture
is already checked and shrunk as a dataset upload is (`cnncore.datasets.user_images`), so it is
held as its small PNG. Bounds, all settings: waiting pictures per student and per session, the
PNG bytes every session's queue holds together, the outcomes a session remembers, and one
link per class session.

Where the links and queues live follows the class sessions (`app.sessions.get_hub`): in this
process's memory on SQLite (`InMemoryClassPictures`), in the database on PostgreSQL, shared
by every worker (`app.class_pictures_postgres.PostgresClassPictures`). Both keep the same
interface (`ClassPictures`) and refuse with the same `ClassPictureError`s, in the same order.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from app.runs.store import shared_database
from app.settings import Settings, get_settings
from cnncore.datasets.user_images import PreparedPicture

__all__ = ["ClassPictureError", "ClassPictureLimits", "ClassPictures", "InMemoryClassPictures",
           "Submission", "check_room", "get_class_pictures", "new_submission_id"]  # fmt: skip

STATUSES = ("pending", "accepted", "duplicate", "rejected")


class ClassPictureError(Exception):
    """A refusal: its HTTP status, the field it names and a stable type for the pages."""

    def __init__(self, status_code: int, field: str, message: str, kind: str,
                 **ctx: int) -> None:  # fmt: skip
        super().__init__(message)
        self.status_code, self.field, self.kind, self.ctx = status_code, field, kind, ctx


@dataclass(frozen=True)
class ClassPictureLimits:
    per_student: int = 5
    per_session: int = 60
    total_bytes: int = 30_000_000
    decided: int = 500
    links: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassPictureLimits:
        return cls(settings.class_pictures_per_student, settings.class_pictures_pending,
                   settings.class_pictures_bytes, settings.class_pictures_decided,
                   settings.max_class_sessions)  # fmt: skip


@dataclass
class Submission:
    id: str  # unguessable: it names the picture's URL
    student: str  # the page's random id of the student's tab
    name: str  # what the student typed as their name
    class_id: int
    width: int  # the kept picture's size
    height: int
    picture: PreparedPicture | None  # dropped once decided; only `waiting` must carry it
    status: str = "pending"


def new_submission_id() -> str:
    return secrets.token_urlsafe(12)


# --- the refusals both implementations make ------------------------------------------------


def closed() -> ClassPictureError:
    return ClassPictureError(409, "dataset", "the teacher has not opened a dataset to this class",
                             "class_pictures_closed")  # fmt: skip


def links_full(limits: ClassPictureLimits) -> ClassPictureError:
    return ClassPictureError(503, "dataset", f"{limits.links} class sessions already collect "
                             "pictures", "class_pictures_full")  # fmt: skip


def not_found() -> ClassPictureError:
    return ClassPictureError(404, "picture", "no such picture", "not_found")


def decided_already(status: str) -> ClassPictureError:
    return ClassPictureError(409, "picture", f"this picture was {status} already",
                             "class_picture_decided")  # fmt: skip


def check_room(limits: ClassPictureLimits, student_waiting: int, session_waiting: int,
               held: int, size: int) -> None:  # fmt: skip
    """Refuse a picture of `size` PNG bytes over a limit: 429 for the student's or the session's
    count of waiting pictures, 507 when every queue together would hold over `total_bytes`."""
    if student_waiting >= limits.per_student:
        raise ClassPictureError(
            429, "image",
            f"you already have {limits.per_student} pictures waiting for the teacher",
            "class_pictures_per_student", limit=limits.per_student,
        )  # fmt: skip
    if session_waiting >= limits.per_session:
        raise ClassPictureError(429, "image", f"{limits.per_session} pictures already wait for "
                                "the teacher", "class_pictures_per_session",
                                limit=limits.per_session)  # fmt: skip
    if held + size > limits.total_bytes:
        raise ClassPictureError(
            507, "image", "the server holds as many waiting pictures as it may; try again once "
            "the teacher has looked", "class_pictures_bytes", limit=limits.total_bytes,
        )  # fmt: skip


class ClassPictures(Protocol):
    """Every session's link to a dataset and its queue of pictures. Codes are normalised
    (`app.sessions_shared.normalise_code`); refusals are `ClassPictureError`s."""

    limits: ClassPictureLimits
    blocking: bool  # True: the routes call it from a thread (it waits on its database)

    @property
    def held(self) -> int:
        """PNG bytes of every waiting picture, every session together."""

    def link(self, code: str, dataset_id: str) -> None:
        """Link session `code` to a dataset; linking another one drops what waits (503 when
        `links` sessions are linked already)."""

    def full(self) -> bool: ...

    def codes(self) -> list[str]: ...

    def unlink(self, code: str) -> None: ...

    def linked(self, code: str) -> str | None: ...

    def dataset_of(self, code: str) -> str:
        """The dataset session `code` collects pictures for (409 when none)."""

    def submit(self, code: str, student: str, name: str, class_id: int,
               picture: PreparedPicture) -> Submission:  # fmt: skip
        """Queue a checked picture, within the limits (`check_room`)."""

    def mine(self, code: str, student: str) -> list[Submission]:
        """One student's pictures, oldest first (their PNGs need not come along)."""

    def pending(self, code: str) -> list[Submission]:
        """The waiting pictures, oldest first (their PNGs need not come along)."""

    def waiting(self, code: str, submission_id: str) -> Submission:
        """A picture still waiting, with its PNG (404 when unknown, 409 when decided)."""

    def decide(self, code: str, submission_id: str, status: str) -> Submission: ...

    def png(self, code: str, submission_id: str) -> bytes | None:
        """A waiting picture's PNG (None when there is none)."""


@dataclass
class _Link:
    dataset_id: str
    submissions: OrderedDict[str, Submission] = field(default_factory=OrderedDict)

    def pending(self) -> list[Submission]:
        return [s for s in self.submissions.values() if s.status == "pending"]


class InMemoryClassPictures:
    """`ClassPictures` in this process's memory (thread-safe): one worker, on SQLite."""

    blocking = False

    def __init__(self, limits: ClassPictureLimits) -> None:
        self.limits = limits
        self.links: dict[str, _Link] = {}
        self._held = 0  # PNG bytes of every waiting picture
        self.lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def link(self, code: str, dataset_id: str) -> None:
        with self.lock:
            current = self.links.get(code)
            if current is not None and current.dataset_id == dataset_id:
                return
            if current is None and len(self.links) >= self.limits.links:
                raise links_full(self.limits)
            self._drop(code)
            self.links[code] = _Link(dataset_id)

    def full(self) -> bool:
        return len(self.links) >= self.limits.links

    def codes(self) -> list[str]:
        with self.lock:
            return list(self.links)

    def unlink(self, code: str) -> None:
        with self.lock:
            self._drop(code)

    def _drop(self, code: str) -> None:
        gone = self.links.pop(code, None)
        if gone is not None:
            self._held -= sum(len(s.picture.png) for s in gone.pending() if s.picture)

    def linked(self, code: str) -> str | None:
        link = self.links.get(code)
        return link.dataset_id if link else None

    def dataset_of(self, code: str) -> str:
        with self.lock:
            return self._link(code).dataset_id

    def _link(self, code: str) -> _Link:
        link = self.links.get(code)
        if link is None:
            raise closed()
        return link

    def submit(self, code: str, student: str, name: str, class_id: int,
               picture: PreparedPicture) -> Submission:  # fmt: skip
        with self.lock:
            link = self._link(code)
            waiting = link.pending()
            check_room(self.limits, sum(s.student == student for s in waiting), len(waiting),
                       self._held, len(picture.png))  # fmt: skip
            made = Submission(new_submission_id(), student, name, class_id, picture.width,
                              picture.height, picture)  # fmt: skip
            link.submissions[made.id] = made
            self._held += len(picture.png)
            self._forget_old(link)
            return made

    def _forget_old(self, link: _Link) -> None:
        """Keep at most `decided` decided outcomes (the oldest go first)."""
        decided = [k for k, s in link.submissions.items() if s.status != "pending"]
        for key in decided[: max(0, len(decided) - self.limits.decided)]:
            del link.submissions[key]

    def mine(self, code: str, student: str) -> list[Submission]:
        with self.lock:
            return [s for s in self._link(code).submissions.values() if s.student == student]

    def pending(self, code: str) -> list[Submission]:
        with self.lock:
            return self._link(code).pending()

    def waiting(self, code: str, submission_id: str) -> Submission:
        with self.lock:
            found = self._link(code).submissions.get(submission_id)
            if found is None:
                raise not_found()
            if found.status != "pending":
                raise decided_already(found.status)
            return found

    def decide(self, code: str, submission_id: str, status: str) -> Submission:
        with self.lock:
            link = self._link(code)
            found = link.submissions.get(submission_id)
            if found is None:
                raise not_found()
            if found.status == "pending" and found.picture is not None:
                self._held -= len(found.picture.png)
            found.status, found.picture = status, None
            self._forget_old(link)
            return found

    def png(self, code: str, submission_id: str) -> bytes | None:
        link = self.links.get(code)
        found = link.submissions.get(submission_id) if link else None
        return found.picture.png if found and found.picture else None


@lru_cache(maxsize=1)
def get_class_pictures() -> ClassPictures:
    """The process's queues (a FastAPI dependency; tests override it): in this process's memory,
    or shared by every worker through PostgreSQL when the database is PostgreSQL (as the class
    sessions they belong to, `app.sessions.get_hub`)."""
    settings = get_settings()
    limits = ClassPictureLimits.from_settings(settings)
    if shared_database(settings.database_url):
        from app.class_pictures_postgres import PostgresClassPictures

        return PostgresClassPictures(settings.database_url, limits,
                                     pool_size=settings.database_pool_size)  # fmt: skip
    return InMemoryClassPictures(limits)
