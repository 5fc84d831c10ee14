"""Datasets' records in the runs database: SQLite (the embedded default) or PostgreSQL.

Three tables beside `runs` (`app.runs.store`): `datasets` (id, name, the SHA-256 of its owner
token, the client address that made it, times, and a `version` raised by every change),
`dataset_classes` (numbered per dataset, never reused) and `dataset_images` (one row per
picture: its digest, which is also its file name, its class, size and bytes). The pictures'
files live under the data folder (`app.datasets.files`); rows are the truth of what a
dataset holds.

One store class for both databases: the SQL is written once with `?` parameters, and a small
database adapter runs it (SQLite: a connection per thread, `BEGIN IMMEDIATE` around writes;
PostgreSQL: the run store's bounded pool, the dataset's row locked `FOR UPDATE`). Limits that
depend on what a dataset already holds (pictures, bytes, pixels, classes) are checked inside
the write's transaction, so two uploads at once cannot both squeeze under them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.runs.store import shared_database
from cnncore.errors import CNNCoreError

__all__ = [
    "ClassRecord",
    "DatasetLimits",
    "DatasetRecord",
    "DatasetStore",
    "ImageRecord",
    "NewImage",
    "open_dataset_store",
]

DATASET_TABLES = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_digest TEXT NOT NULL,
    client TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    next_class INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS datasets_by_client ON datasets (client);
CREATE INDEX IF NOT EXISTS datasets_by_owner ON datasets (token_digest);
CREATE TABLE IF NOT EXISTS dataset_classes (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (dataset_id, class_id)
);
CREATE TABLE IF NOT EXISTS dataset_images (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    class_id INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (dataset_id, digest)
);
"""
_COUNTS_LOCK = "cnnviz.datasets"  # PostgreSQL: the advisory lock around whole-server counts
_DATASET_COLUMNS = "id, name, token_digest, client, created_at, updated_at, version"
_IMAGE_QUERY = ("SELECT digest, class_id, width, height, bytes, source, created_at "
                "FROM dataset_images WHERE dataset_id = ?")  # fmt: skip


@dataclass(frozen=True)
class DatasetLimits:
    """What one dataset, one owner, one client address and the whole server may hold
    (settings `dataset_*`, `owner_max_datasets`, `client_max_datasets`, `datasets_max_*`)."""

    max_images: int = 2000
    max_classes: int = 20
    max_bytes: int = 50_000_000  # kept PNG bytes of all its pictures
    max_pixels: int = 40_000_000  # kept pixels of all its pictures
    owner_max_datasets: int = 10  # per owner token: one browser
    client_max_datasets: int = 400  # per client address: a class behind one NAT address
    max_datasets: int = 2000  # everyone's together
    max_total_bytes: int = 5_000_000_000  # kept PNG bytes of every dataset together


@dataclass(frozen=True)
class ClassRecord:
    id: int
    name: str
    images: int


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    token_digest: str
    client: str
    created_at: float
    updated_at: float
    version: int
    classes: tuple[ClassRecord, ...]
    images: int
    bytes: int
    pixels: int


@dataclass
class NewImage:
    digest: str
    class_id: int | None  # None: the class named class_name (made when the dataset has none)
    width: int
    height: int
    bytes: int
    source: str  # "file", "zip", "drawing" or "camera"
    class_name: str = ""
    file: str = ""  # the name it came with, for the answer


@dataclass(frozen=True)
class ImageRecord:
    digest: str
    class_id: int
    width: int
    height: int
    bytes: int
    source: str
    created_at: float


Execute = Callable[[str, Sequence[Any]], list[tuple]]


class _SQLite:
    lock_row = ""  # BEGIN IMMEDIATE already holds the database's write lock

    def __init__(self, path: Path, busy_timeout_ms: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path, self._busy_ms = path, busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None,
                                         check_same_thread=False)  # fmt: skip
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA foreign_keys = ON")
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def script(self, sql: str) -> None:
        self._connection().executescript(sql)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Execute]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield lambda sql, params=(): connection.execute(sql, params).fetchall()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()


class _Postgres:
    lock_row = " FOR UPDATE"

    def __init__(self, url: str, pool_size: int) -> None:
        from app.runs.store_postgres import _Pool

        self._pool = _Pool(url, pool_size, 30.0)

    def script(self, sql: str) -> None:
        with self.transaction() as execute:
            execute("SELECT pg_advisory_xact_lock(%s)", (0x636E6E64,))  # "cnnd"
            for statement in filter(str.strip, sql.split(";")):
                execute(statement, ())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Execute]:
        with self._pool.connection() as connection, connection.transaction():

            def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
                cursor = connection.execute(sql.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []

            yield execute

    def close(self) -> None:
        self._pool.close()


def _limit(what: str, have: int, adding: int, limit: int, code: str) -> None:
    if have + adding > limit:
        raise CNNCoreError(
            f"a dataset holds at most {limit:,} {what}; it has {have:,} and this adds {adding:,}",
            "files", code=code, ctx={"limit": limit, "count": have, "total": have + adding},
        )  # fmt: skip


class DatasetStore:
    """Datasets, their classes and pictures' rows; safe from any thread and process."""

    def __init__(self, db: _SQLite | _Postgres) -> None:
        self._db = db
        db.script(DATASET_TABLES)

    def close(self) -> None:
        self._db.close()

    # --- reading ----------------------------------------------------------------------------

    def _read(self, execute: Execute, dataset_id: str, lock: bool = False) -> DatasetRecord | None:
        rows = execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE id = ?"
                       + (self._db.lock_row if lock else ""), (dataset_id,))  # fmt: skip
        if not rows:
            return None
        classes = execute(
            "SELECT c.class_id, c.name, COUNT(i.digest) FROM dataset_classes c LEFT JOIN "
            "dataset_images i ON i.dataset_id = c.dataset_id AND i.class_id = c.class_id "
            "WHERE c.dataset_id = ? GROUP BY c.class_id, c.name ORDER BY c.class_id",
            (dataset_id,),
        )
        images, size, pixels = execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(width * height), 0) "
            "FROM dataset_images WHERE dataset_id = ?", (dataset_id,),
        )[0]  # fmt: skip
        return DatasetRecord(*rows[0], tuple(ClassRecord(*c) for c in classes),
                             int(images), int(size), int(pixels))  # fmt: skip

    def get(self, dataset_id: str) -> DatasetRecord | None:
        with self._db.transaction() as execute:
            return self._read(execute, dataset_id)

    def contents(self, dataset_id: str) -> tuple[DatasetRecord, list[ImageRecord]] | None:
        """The dataset and all its pictures' rows, read in one transaction (one version)."""
        with self._db.transaction() as execute:
            record = self._read(execute, dataset_id)
            rows = execute(f"{_IMAGE_QUERY} ORDER BY created_at, digest", (dataset_id,))
        return None if record is None else (record, [ImageRecord(*row) for row in rows])

    def images(self, dataset_id: str, class_id: int | None = None) -> list[ImageRecord]:
        query = _IMAGE_QUERY
        params: list[Any] = [dataset_id]
        if class_id is not None:
            query += " AND class_id = ?"
            params.append(class_id)
        with self._db.transaction() as execute:
            rows = execute(query + " ORDER BY created_at, digest", params)
        return [ImageRecord(*row) for row in rows]

    # --- datasets ----------------------------------------------------------------------------

    def create(self, dataset_id: str, name: str, token_digest: str, client: str,
               classes: Sequence[str], limits: DatasetLimits) -> DatasetRecord:  # fmt: skip
        """A new dataset, refused (before any row is written) when its owner, its client
        address or the whole server already keeps as many datasets as allowed."""
        now = time.time()
        with self._db.transaction() as execute:
            if isinstance(self._db, _Postgres):  # creations one at a time: counts stay exact
                execute("SELECT pg_advisory_xact_lock(hashtext(?))", (_COUNTS_LOCK,))
            for column, value, limit, code, who in (
                ("token_digest", token_digest, limits.owner_max_datasets, "dataset_owner_quota",
                 "one browser"),
                ("client", client, limits.client_max_datasets, "dataset_client_quota",
                 "one network address (every computer behind it together)"),
            ):  # fmt: skip
                (held,) = execute(f"SELECT COUNT(*) FROM datasets WHERE {column} = ?", (value,))[0]
                if held >= limit:
                    message = f"{who} may keep at most {limit} datasets here; delete one first"
                    raise CNNCoreError(message, "name", code=code, ctx={"limit": limit})
            (held,) = execute("SELECT COUNT(*) FROM datasets")[0]
            if held >= limits.max_datasets:
                raise CNNCoreError(
                    f"the server keeps at most {limits.max_datasets} datasets, everyone's "
                    "together, and is full; ask whoever runs it", "name",
                    code="datasets_server_full", ctx={"limit": limits.max_datasets},
                )  # fmt: skip
            _limit("classes", 0, len(classes), limits.max_classes, "dataset_too_many_classes")
            execute(f"INSERT INTO datasets ({_DATASET_COLUMNS}, next_class) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
                    (dataset_id, name, token_digest, client, now, now, len(classes)))  # fmt: skip
            for class_id, class_name in enumerate(classes):
                execute("INSERT INTO dataset_classes (dataset_id, class_id, name) "
                        "VALUES (?, ?, ?)", (dataset_id, class_id, class_name))  # fmt: skip
            record = self._read(execute, dataset_id)
        assert record is not None
        return record

    def _changed(self, execute: Execute, dataset_id: str) -> DatasetRecord:
        execute("UPDATE datasets SET version = version + 1, updated_at = ? WHERE id = ?",
                (time.time(), dataset_id))  # fmt: skip
        record = self._read(execute, dataset_id)
        assert record is not None
        return record

    @contextlib.contextmanager
    def _change(self, dataset_id: str) -> Iterator[tuple[Execute, DatasetRecord]]:
        """A write transaction with the dataset's row locked; KeyError when it is gone."""
        with self._db.transaction() as execute:
            record = self._read(execute, dataset_id, lock=True)
            if record is None:
                raise KeyError(dataset_id)
            yield execute, record

    def rename(self, dataset_id: str, name: str) -> DatasetRecord:
        with self._change(dataset_id) as (execute, _):
            execute("UPDATE datasets SET name = ? WHERE id = ?", (name, dataset_id))
            return self._changed(execute, dataset_id)

    def owner_holds_any(self, token_digest: str) -> bool:
        """Whether some dataset has this owner token's digest (its owner may make more)."""
        with self._db.transaction() as execute:
            return bool(execute("SELECT 1 FROM datasets WHERE token_digest = ? LIMIT 1",
                                (token_digest,)))  # fmt: skip

    def delete(self, dataset_id: str) -> bool:
        with self._db.transaction() as execute:
            execute("DELETE FROM dataset_images WHERE dataset_id = ?", (dataset_id,))
            execute("DELETE FROM dataset_classes WHERE dataset_id = ?", (dataset_id,))
            return bool(execute("DELETE FROM datasets WHERE id = ? RETURNING id", (dataset_id,)))

    # --- classes ---------------------------------------------------------------------------

    def add_class(self, dataset_id: str, name: str, limits: DatasetLimits) -> DatasetRecord:
        with self._change(dataset_id) as (execute, record):
            _class_name_free(record, name)
            _limit("classes", len(record.classes), 1, limits.max_classes,
                   "dataset_too_many_classes")  # fmt: skip
            self._new_class(execute, dataset_id, name)
            return self._changed(execute, dataset_id)

    @staticmethod
    def _new_class(execute: Execute, dataset_id: str, name: str) -> int:
        (class_id,) = execute("UPDATE datasets SET next_class = next_class + 1 WHERE id = ? "
                              "RETURNING next_class - 1", (dataset_id,))[0]  # fmt: skip
        execute("INSERT INTO dataset_classes (dataset_id, class_id, name) VALUES (?, ?, ?)",
                (dataset_id, class_id, name))  # fmt: skip
        return int(class_id)

    def rename_class(self, dataset_id: str, class_id: int, name: str) -> DatasetRecord:
        with self._change(dataset_id) as (execute, record):
            _class_of(record, class_id)
            _class_name_free(record, name, but=class_id)
            execute("UPDATE dataset_classes SET name = ? WHERE dataset_id = ? AND class_id = ?",
                    (name, dataset_id, class_id))  # fmt: skip
            return self._changed(execute, dataset_id)

    def delete_class(self, dataset_id: str, class_id: int) -> tuple[DatasetRecord, list[str]]:
        """The dataset without the class and its pictures; the digests whose rows went."""
        with self._change(dataset_id) as (execute, record):
            _class_of(record, class_id)
            gone = execute("DELETE FROM dataset_images WHERE dataset_id = ? AND class_id = ? "
                           "RETURNING digest", (dataset_id, class_id))  # fmt: skip
            execute("DELETE FROM dataset_classes WHERE dataset_id = ? AND class_id = ?",
                    (dataset_id, class_id))  # fmt: skip
            return self._changed(execute, dataset_id), [digest for (digest,) in gone]

    # --- pictures --------------------------------------------------------------------------

    def add_images(
        self, dataset_id: str, images: Sequence[NewImage], limits: DatasetLimits,
        write: Callable[[list[NewImage]], None] = lambda new: None,
    ) -> tuple[DatasetRecord, list[NewImage], list[tuple[NewImage, int]]]:  # fmt: skip
        """Add pictures all or none: (dataset, added, duplicates with the class already
        holding each). `write(added)` stores their files inside the transaction, so a refusal
        or a failed write adds no row."""
        with self._change(dataset_id) as (execute, record):
            named = {c.name: c.id for c in record.classes}
            for image in images:
                if image.class_id is None and image.class_name not in named:
                    _class_name_free(record, image.class_name)
                    _limit("classes", len(named), 1, limits.max_classes,
                           "dataset_too_many_classes")  # fmt: skip
                    named[image.class_name] = self._new_class(execute, dataset_id,
                                                              image.class_name)  # fmt: skip
                if image.class_id is None:
                    image.class_id = named[image.class_name]
                else:
                    _class_of(record, image.class_id)
            held = dict(execute("SELECT digest, class_id FROM dataset_images "
                                "WHERE dataset_id = ?", (dataset_id,)))  # fmt: skip
            added, duplicates = [], []
            for image in images:
                if image.digest in held:
                    duplicates.append((image, held[image.digest]))
                else:
                    held[image.digest] = image.class_id
                    added.append(image)
            _limit("pictures", record.images, len(added), limits.max_images,
                   "dataset_too_many_images")  # fmt: skip
            _limit("bytes", record.bytes, sum(i.bytes for i in added), limits.max_bytes,
                   "dataset_too_many_bytes")  # fmt: skip
            _limit("pixels", record.pixels, sum(i.width * i.height for i in added),
                   limits.max_pixels, "dataset_too_many_pixels")  # fmt: skip
            if not added:
                return record, [], duplicates
            self._check_total_bytes(execute, sum(i.bytes for i in added), limits)
            now = time.time()
            for image in added:
                execute("INSERT INTO dataset_images (dataset_id, digest, class_id, width, height, "
                        "bytes, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (dataset_id, image.digest, image.class_id, image.width, image.height,
                         image.bytes, image.source, now))  # fmt: skip
            write(added)
            return self._changed(execute, dataset_id), added, duplicates

    def _check_total_bytes(self, execute: Execute, adding: int, limits: DatasetLimits) -> None:
        """Refuse, before any file is written, pictures that would take the kept bytes of every
        dataset together past `max_total_bytes` (the disk the server gives datasets)."""
        if isinstance(self._db, _Postgres):  # adds to different datasets, one at a time here
            execute("SELECT pg_advisory_xact_lock(hashtext(?))", (_COUNTS_LOCK,))
        (held,) = execute("SELECT COALESCE(SUM(bytes), 0) FROM dataset_images")[0]
        if held + adding > limits.max_total_bytes:
            raise CNNCoreError(
                f"the server keeps at most {limits.max_total_bytes:,} bytes of pictures, "
                f"everyone's datasets together; it holds {held:,} and these add {adding:,}",
                "files", code="datasets_server_bytes",
                ctx={"limit": limits.max_total_bytes, "count": int(held),
                     "total": int(held) + adding},
            )  # fmt: skip

    def delete_image(self, dataset_id: str, digest: str) -> DatasetRecord:
        with self._change(dataset_id) as (execute, _):
            if not execute("DELETE FROM dataset_images WHERE dataset_id = ? AND digest = ? "
                           "RETURNING digest", (dataset_id, digest)):  # fmt: skip
                raise KeyError(digest)
            return self._changed(execute, dataset_id)

    def move_image(self, dataset_id: str, digest: str, class_id: int) -> DatasetRecord:
        with self._change(dataset_id) as (execute, record):
            _class_of(record, class_id)
            if not execute(
                "UPDATE dataset_images SET class_id = ? WHERE dataset_id = ? AND "
                "digest = ? RETURNING digest",
                (class_id, dataset_id, digest),
            ):
                raise KeyError(digest)
            return self._changed(execute, dataset_id)


def _class_of(record: DatasetRecord, class_id: int) -> ClassRecord:
    for found in record.classes:
        if found.id == class_id:
            return found
    raise CNNCoreError(
        f"the dataset has no class {class_id}",
        "class_id",
        code="dataset_unknown_class",
        ctx={"classes": len(record.classes)},
    )


def _class_name_free(record: DatasetRecord, name: str, but: int | None = None) -> None:
    if any(c.name == name and c.id != but for c in record.classes):
        raise CNNCoreError(f"the dataset already has a class named {name!r}", "name",
                           code="dataset_class_exists")  # fmt: skip


def open_dataset_store(url: str, sqlite_path: Path, pool_size: int = 4) -> DatasetStore:
    """The dataset store on the runs database that `url` names (`app.runs.store.open_run_store`:
    empty → the SQLite file, `sqlite:///path`, `postgresql://…`)."""
    if url.startswith("sqlite:///"):
        return DatasetStore(_SQLite(Path(url.removeprefix("sqlite:///"))))
    if shared_database(url):
        return DatasetStore(_Postgres(url, pool_size))
    if url:
        raise RuntimeError(f"database_url {url.split(':', 1)[0]}:… is not supported")
    return DatasetStore(_SQLite(sqlite_path))
