"""Datasets as the routes use them: the store's rows, the files, the limits and the owner token.

Whoever creates a dataset is given its owner token once (`app.owner_tokens`, as a run's: 192
random bits, only its SHA-256 kept); every change needs it (header `X-Dataset-Token`): 401
without, 403 with another. A browser creating another dataset sends a token it holds and the
new dataset gets the same one, so one browser's datasets are counted together (a class behind
one network address is many browsers, each with its own quota). Reading a dataset and its
pictures needs only its id (16 random hex digits).

Adding pictures is all or nothing: every picture is decoded and checked first (a bad one
refuses the request, naming its file), then rows and files are written in one transaction,
so a refusal (a limit, a bad file) adds nothing.
"""

from __future__ import annotations

import atexit
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.datasets.files import DatasetFiles
from app.datasets.store import DatasetLimits, DatasetRecord, DatasetStore, NewImage
from app.datasets.store import open_dataset_store as _open
from app.owner_tokens import check_owner, new_control_token, token_digest
from app.settings import Settings, get_settings
from cnncore.datasets.user_images import PictureLimits, PreparedPicture, zip_pictures
from cnncore.datasets.user_zip import ZipLimits

__all__ = ["DatasetError", "Datasets", "get_datasets", "new_dataset_id", "untrainable"]


class DatasetError(Exception):
    """A refusal with its HTTP status (the route turns it into one)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def new_dataset_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Datasets:
    open_store: Callable[[], DatasetStore]  # opened on first use: a server that never sees a
    files: DatasetFiles  # dataset (and a test of something else) never touches the database
    limits: DatasetLimits
    pictures: PictureLimits
    zip_limits: ZipLimits
    _store: DatasetStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def store(self) -> DatasetStore:
        with self._lock:
            if self._store is None:
                self._store = self.open_store()
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()

    @classmethod
    def from_settings(cls, settings: Settings, store: DatasetStore | None = None) -> Datasets:
        def open_store() -> DatasetStore:
            return store or _open(settings.database_url, settings.sqlite_path,
                                  settings.database_pool_size)  # fmt: skip

        limits = DatasetLimits(
            max_images=settings.dataset_max_images, max_classes=settings.dataset_max_classes,
            max_bytes=settings.dataset_max_bytes, max_pixels=settings.dataset_max_pixels,
            owner_max_datasets=settings.owner_max_datasets,
            client_max_datasets=settings.client_max_datasets,
            max_datasets=settings.datasets_max_count, max_total_bytes=settings.datasets_max_bytes,
        )  # fmt: skip
        pictures = PictureLimits(
            max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels,
            max_aspect_ratio=settings.max_image_aspect_ratio, side=settings.dataset_image_side,
        )  # fmt: skip
        zip_limits = ZipLimits(
            max_archive_bytes=settings.dataset_upload_bytes,
            max_total_bytes=settings.dataset_upload_bytes * 4,
            max_files=settings.dataset_max_images, max_classes=settings.dataset_max_classes,
            max_image_pixels=settings.max_image_pixels,
            max_total_pixels=settings.dataset_zip_pixels,
        )  # fmt: skip
        return cls(
            open_store, DatasetFiles(settings.user_datasets_dir), limits, pictures, zip_limits
        )

    # --- reading and owning -------------------------------------------------------------------

    def get(self, dataset_id: str) -> DatasetRecord:
        record = self.store.get(dataset_id)
        if record is None:
            raise DatasetError(404, f"no dataset has the id {dataset_id!r}")
        return record

    def owned(self, dataset_id: str, token: str | None) -> DatasetRecord:
        """The dataset, once `token` proves its creator asks (404, then 401 or 403)."""
        record = self.get(dataset_id)
        check_owner(
            record.token_digest,
            token,
            DatasetError,
            missing="changing a dataset needs the token its creator was given "
            "(header X-Dataset-Token)",
            wrong="this token does not own this dataset",
        )
        return record

    def create(self, name: str, classes: Sequence[str], client: str,
               token: str | None = None) -> tuple[DatasetRecord, str]:  # fmt: skip
        """A new dataset and its owner token: `token` when it already owns a dataset (one
        browser, one token: its datasets are counted together against `owner_max_datasets`),
        otherwise a new one."""
        if not token or not self.store.owner_holds_any(token_digest(token)):
            token = new_control_token()
        record = self.store.create(new_dataset_id(), name, token_digest(token), client, classes,
                                   self.limits)  # fmt: skip
        return record, token

    def delete(self, dataset_id: str) -> None:
        self.store.delete(dataset_id)
        self.files.remove_all(dataset_id)

    # --- pictures ----------------------------------------------------------------------------

    def add(
        self, dataset_id: str, pictures: Sequence[tuple[int | None, str, PreparedPicture]],
        source: str,
    ) -> tuple[DatasetRecord, list[NewImage], list[tuple[NewImage, int]]]:  # fmt: skip
        """Add (class id or None, class name, picture) triples all or nothing."""
        images = [NewImage(p.digest, class_id, p.width, p.height, len(p.png), source,
                           class_name, p.name) for class_id, class_name, p in pictures]  # fmt: skip
        png = {p.digest: p.png for _, _, p in pictures}
        written: list[str] = []

        def write(added: list[NewImage]) -> None:
            fresh = [i.digest for i in added]
            written.extend(fresh)
            self.files.write(dataset_id, {digest: png[digest] for digest in fresh})

        try:
            return self.store.add_images(dataset_id, images, self.limits, write)
        except BaseException:
            self.files.remove(dataset_id, written)  # the transaction rolled back: no row names them
            raise

    def add_archive(self, dataset_id: str, data: bytes) -> tuple:
        """A zip of class folders: each folder's pictures into the class of that name (made
        when the dataset has none)."""
        found = zip_pictures(data, self.zip_limits, self.pictures)
        return self.add(dataset_id, [(None, label, p) for label, p in found], "zip")

    def for_run(self, dataset_id: str, version: int | None = None) -> tuple[Path, int]:
        """The current version's manifest (made once per version) and its number, for a run
        to train on: its classes that hold pictures, at least 2 of them, 2 pictures each (one
        to learn from, one held out). LookupError saying what is missing otherwise. An
        earlier `version` is found among those runs have trained on (their manifests kept)."""
        found = self.store.contents(dataset_id)
        if found is None:
            raise LookupError(f"no dataset has the id {dataset_id!r}")
        record, images = found
        if version is not None and version != record.version:
            kept = self.files.kept_manifest(dataset_id, version)
            if kept is None:
                raise LookupError(f"version {version} of this dataset is not kept; the kept "
                                  f"ones are {self.files.versions(dataset_id) or 'none'} and "
                                  f"the current one is {record.version}")  # fmt: skip
            return kept, version
        reason = untrainable(record)
        if reason:
            raise LookupError(reason)
        filled = [c for c in record.classes if c.images > 0]
        index = {c.id: i for i, c in enumerate(filled)}
        manifest = self.files.snapshot(dataset_id, record.version, [c.name for c in filled],
                                       [(i.digest, index[i.class_id]) for i in images])  # fmt: skip
        return manifest, record.version


def untrainable(record: DatasetRecord) -> str | None:
    """Why a run cannot train on the dataset as it is now (None when it can)."""
    filled = [c for c in record.classes if c.images > 0]
    if len(filled) < 2:
        return "a network needs pictures of at least 2 classes to tell apart"
    few = [c.name for c in filled if c.images < 2]
    if few:
        return (f"class {few[0]!r} has 1 picture; each class needs 2 or more "
                "(one to learn from, one to test on)")  # fmt: skip
    return None


_datasets: Datasets | None = None
_lock = threading.Lock()


def get_datasets() -> Datasets:
    """The process-wide datasets (a FastAPI dependency; tests override it)."""
    global _datasets
    with _lock:
        if _datasets is None:
            _datasets = Datasets.from_settings(get_settings())
            atexit.register(_datasets.close)
        return _datasets
