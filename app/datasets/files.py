"""The pictures' files of every dataset, under `<data dir>/datasets/<dataset id>/`.

Each picture is `<digest>.png` (`cnncore.datasets.user_images`): a name made by the server
from the pixels, never from a request, and checked against its pattern again before any path
is joined. A version a run trains on is `v<version>/`: a manifest plus hard links to the
pictures it lists (a copy where links are impossible), so deleting or moving a picture later
leaves the run's version whole, at no cost in disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

from cnncore.datasets.user_images import DIGEST_PATTERN

__all__ = ["DATASET_ID_PATTERN", "DatasetFiles"]

DATASET_ID_PATTERN = r"^[0-9a-f]{16}$"
_ID = re.compile(DATASET_ID_PATTERN)
_DIGEST = re.compile(DIGEST_PATTERN)
MANIFEST = "manifest.json"


class DatasetFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, dataset_id: str) -> Path:
        if not _ID.match(dataset_id):
            raise ValueError(f"not a dataset id: {dataset_id!r}")
        return self.root / dataset_id

    def picture(self, dataset_id: str, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a picture digest: {digest!r}")
        return self.folder(dataset_id) / f"{digest}.png"

    def write(self, dataset_id: str, pictures: dict[str, bytes]) -> None:
        """Write each picture atomically (a reader never sees half a file)."""
        folder = self.folder(dataset_id)
        folder.mkdir(parents=True, exist_ok=True)
        for digest, png in pictures.items():
            path = self.picture(dataset_id, digest)
            partial = path.with_name(f".{digest}.partial")
            partial.write_bytes(png)
            os.replace(partial, path)

    def remove(self, dataset_id: str, digests: list[str]) -> None:
        for digest in digests:
            self.picture(dataset_id, digest).unlink(missing_ok=True)

    def remove_all(self, dataset_id: str) -> None:
        shutil.rmtree(self.folder(dataset_id), ignore_errors=True)

    def versions(self, dataset_id: str) -> list[int]:
        """The versions runs have trained on (their manifests kept), oldest first."""
        folder = self.folder(dataset_id)
        found = [int(p.parent.name[1:]) for p in folder.glob(f"v*/{MANIFEST}")
                 if re.fullmatch(r"v\d{1,9}", p.parent.name)]  # fmt: skip
        return sorted(found)

    def kept_manifest(self, dataset_id: str, version: int) -> Path | None:
        manifest = self.folder(dataset_id) / f"v{int(version)}" / MANIFEST
        return manifest if manifest.is_file() else None

    def snapshot(self, dataset_id: str, version: int, classes: list[str],
                 images: list[tuple[str, int]]) -> Path:  # fmt: skip
        """The manifest of a version (made once; a later call finds it): class names and
        (digest, class index) pairs, its pictures linked beside it."""
        target = self.folder(dataset_id) / f"v{int(version)}"
        manifest = target / MANIFEST
        if manifest.is_file():
            return manifest
        partial = self.folder(dataset_id) / f".v{int(version)}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for digest, _ in images:
            source = self.picture(dataset_id, digest)
            try:
                os.link(source, partial / source.name)
            except OSError:
                shutil.copyfile(source, partial / source.name)
        (partial / MANIFEST).write_text(json.dumps({"classes": classes, "images": images}))
        try:
            os.replace(partial, target)
        except OSError:  # another process made the same version meanwhile: keep theirs
            shutil.rmtree(partial, ignore_errors=True)
        with contextlib.suppress(OSError):
            shutil.rmtree(partial)
        return manifest
