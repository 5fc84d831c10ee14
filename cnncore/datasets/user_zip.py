"""A user's own dataset: a zip of class folders (`cats/1.png`, `dogs/7.jpg`, …).

Nothing is extracted to disk: members are read into memory one at a time, after every entry of
the archive has been checked. An archive is refused whole when any entry is unsafe — an
absolute path, a `..` step, a drive letter, a symbolic link — or when it is too big: bytes of
the archive, declared and actual bytes once inflated (the "zip bomb": a few kB that inflate to
gigabytes), number of files, number of classes, or pixels of one image (a small PNG can declare
a 100 000 × 100 000 canvas; Pillow's size is read from the header before any pixel is decoded).
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnncore.errors import CNNCoreError

__all__ = ["IMAGE_SUFFIXES", "ZipLimits", "load_image_folder_zip", "read_image_folder_zip"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# What `zipfile` raises for a damaged archive or member (bad CRC, a size that lies, a broken
# deflate stream, a header offset out of range), an encrypted member or an unsupported method.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            ValueError, IndexError, OSError)  # fmt: skip
# Folders that archivers add beside the content (macOS resource forks); never a class.
_IGNORED_PARTS = ("__MACOSX",)


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on an uploaded archive. The web layer passes its own from settings."""

    max_archive_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024  # all members once inflated
    max_files: int = 20_000
    max_classes: int = 100
    max_image_pixels: int = 4096 * 4096
    # width × height summed over every image, read from each header before it is decoded:
    # 20,000 small files each under the per-image limit would otherwise decode 335 G pixels
    max_total_pixels: int = 500_000_000


def _safe_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path of one entry as folder names, or CNNCoreError when it could escape."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise CNNCoreError(f"{name!r} is a symbolic link; links are not allowed", "archive",
                           code="archive_unsafe_path", ctx={"file": name})  # fmt: skip
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise CNNCoreError(f"{name!r} is an absolute path; paths must be relative", "archive",
                           code="archive_unsafe_path", ctx={"file": name})  # fmt: skip
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise CNNCoreError(f"{name!r} steps out of the archive with '..'", "archive",
                           code="archive_unsafe_path", ctx={"file": name})  # fmt: skip
    return tuple(p for p in parts if p not in ("", "."))


def _inflates(limits: ZipLimits) -> CNNCoreError:
    return CNNCoreError(f"the archive inflates to more than {limits.max_total_bytes} bytes",
                        "archive", code="archive_inflates_too_much",
                        ctx={"limit": limits.max_total_bytes})  # fmt: skip


def _members(archive: zipfile.ZipFile, limits: ZipLimits) -> list[tuple[str, zipfile.ZipInfo]]:
    """(class name, entry) for every image, after checking every entry of the archive."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise CNNCoreError(f"the archive holds more than {limits.max_files} files", "archive",
                           code="archive_too_many_files",
                           ctx={"limit": limits.max_files})  # fmt: skip
    if sum(info.file_size for info in infos) > limits.max_total_bytes:
        raise _inflates(limits)
    entries = []
    for info in infos:
        parts = _safe_parts(info)
        # `not parts` first: an entry named "" has none, and is_dir() would index name[-1].
        if not parts or info.is_dir() or any(p in _IGNORED_PARTS for p in parts):
            continue
        if parts[-1].startswith(".") or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            continue
        entries.append((parts, info))
    if not entries:
        raise CNNCoreError("the archive holds no images (png, jpg, bmp, gif, webp)", "archive",
                           code="archive_no_images")  # fmt: skip
    # One wrapping folder ("animals/cats/1.png") is common when a folder is zipped whole.
    tops = {parts[0] for parts, _ in entries}
    strip = 1 if len(tops) == 1 and all(len(parts) >= 3 for parts, _ in entries) else 0
    members = []
    for parts, info in entries:
        inner = parts[strip:]
        if len(inner) != 2:
            raise CNNCoreError(
                f"{info.filename!r} is not inside exactly one class folder (class/image.png)",
                "archive", code="archive_not_in_class_folder", ctx={"file": info.filename},
            )  # fmt: skip
        members.append((inner[0], info))
    return members


def _decode(raw: bytes, name: str, mode: str, size: int, max_pixels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise CNNCoreError(
                    f"{name!r} is {width}×{height} pixels, over the {max_pixels} allowed",
                    "archive",
                )
            image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise CNNCoreError(f"{name!r} is not a readable image ({exc})", "archive") from exc


def _header_pixels(raw: bytes, name: str, pixels_left: int) -> int:
    """width × height from a member's header (nothing decoded); a refusal naming the file
    when it is over what is left of the archive's pixel budget. An unreadable header counts
    0 here: the decoder refuses that file with its own message."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        return 0
    if width * height > pixels_left:
        raise CNNCoreError(
            f"{name!r} ({width}×{height}) brings the archive's images over the total pixels "
            "allowed; use fewer or smaller pictures",
            "archive",
            code="archive_too_many_pixels",
            ctx={"width": width, "height": height, "pixels": width * height,
                 "limit": pixels_left},
        )  # fmt: skip
    return width * height


def read_image_folder_zip(
    data: bytes, limits: ZipLimits | None = None, min_classes: int = 2
) -> list[tuple[str, str, bytes]]:
    """(class name, entry name, raw bytes) of every image, in entry-name order, after every
    entry of the archive was checked; nothing decoded. At least `min_classes` class folders."""
    limits = limits or ZipLimits()
    if len(data) > limits.max_archive_bytes:
        raise CNNCoreError(f"the archive is over {limits.max_archive_bytes} bytes", "archive",
                           code="archive_too_large",
                           ctx={"limit": limits.max_archive_bytes})  # fmt: skip
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _DAMAGED as exc:
        raise CNNCoreError("the upload is not a zip archive", "archive",
                           code="archive_not_zip") from exc  # fmt: skip
    with archive:
        members = _members(archive, limits)
        count = len({label for label, _ in members})
        if count < min_classes or count > limits.max_classes:
            raise CNNCoreError(
                f"found {count} class folders; need {min_classes} to {limits.max_classes}",
                "archive", code="archive_class_count",
                ctx={"count": count, "needed": min_classes, "limit": limits.max_classes},
            )  # fmt: skip
        read, budget, pixels_left = [], limits.max_total_bytes, limits.max_total_pixels
        for label, info in sorted(members, key=lambda m: m[1].filename):
            try:
                with archive.open(info) as member:
                    # The declared size can lie; read at most what is left of the budget, plus one.
                    raw = member.read(budget + 1)
            except _DAMAGED as exc:
                raise CNNCoreError(
                    f"{info.filename!r} cannot be read from the archive ({exc})", "archive",
                    code="archive_member_unreadable", ctx={"file": info.filename},
                ) from exc  # fmt: skip
            budget -= len(raw)
            if budget < 0:
                raise _inflates(limits)
            pixels_left -= _header_pixels(raw, info.filename, pixels_left)
            read.append((label, info.filename, raw))
    return read


def load_image_folder_zip(
    data: bytes,
    image_size: int = 32,
    channels: int = 1,
    limits: ZipLimits | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images N×C×S×S in [0, 1] (C = 1 grayscale or 3 RGB), labels N, sorted class names."""
    limits = limits or ZipLimits()
    if channels not in (1, 3):
        raise CNNCoreError("channels must be 1 (grayscale) or 3 (RGB)", "channels")
    if not 4 <= image_size <= 256:
        raise CNNCoreError("image_size must be between 4 and 256", "image_size")
    members = read_image_folder_zip(data, limits)
    class_names = sorted({label for label, _, _ in members})
    index = {name: i for i, name in enumerate(class_names)}
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, filename, raw in members:
        pixels = _decode(raw, filename, mode, image_size, limits.max_image_pixels)
        images.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
        labels.append(index[label])
    return (
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels, dtype=torch.int64),
        class_names,
    )
