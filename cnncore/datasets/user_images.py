"""A student's own pictures as a dataset: each picture checked, made small and content-addressed.

Every picture (an uploaded file, a zip member, a drawing, a webcam frame) goes through
`prepare_picture`: decoded by `cnncore.images.decode_image` within the byte, pixel and
aspect-ratio limits (the header is read before any pixel), turned upright 8-bit RGB, shrunk
so its longer side is at most `side` (area averaging), and encoded again as PNG. What is kept
is therefore never the uploaded file itself (no metadata, no polyglot bytes) and its size is
bounded by `side`. Its `digest` is SHA-256 over the kept pixels and their shape: the same
picture sent twice, even re-encoded by another program, is found as a duplicate.

A dataset version is a manifest (class names, then (file, class index) pairs) over those
files; `load_manifest_images` reads one for training at a chosen size and channel count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnncore.datasets.user_zip import ZipLimits, read_image_folder_zip
from cnncore.errors import CNNCoreError
from cnncore.images import decode_image, encode_png, shrink

__all__ = [
    "DIGEST_PATTERN",
    "PictureLimits",
    "PreparedPicture",
    "load_manifest_images",
    "picture_digest",
    "prepare_picture",
    "zip_pictures",
]

DIGEST_CHARS = 24  # hex characters of SHA-256 kept as a picture's id (96 bits)
DIGEST_PATTERN = rf"^[0-9a-f]{{{DIGEST_CHARS}}}$"


@dataclass(frozen=True)
class PictureLimits:
    """Bounds on one incoming picture; the web layer passes its settings."""

    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    max_aspect_ratio: float = 20.0
    side: int = 128  # longer side of the kept picture


@dataclass(frozen=True)
class PreparedPicture:
    name: str  # the file name it came with (for messages only)
    png: bytes  # the kept picture, RGB PNG
    digest: str  # picture_digest of its pixels
    width: int
    height: int


def picture_digest(pixels: np.ndarray) -> str:
    """SHA-256 of an H×W×3 uint8 picture's shape and pixels, first DIGEST_CHARS hex digits."""
    hasher = hashlib.sha256(f"{pixels.shape[0]}x{pixels.shape[1]}:".encode())
    hasher.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return hasher.hexdigest()[:DIGEST_CHARS]


def prepare_picture(raw: bytes, name: str, limits: PictureLimits) -> PreparedPicture:
    """Decode, check, shrink and re-encode one picture. A refusal keeps the decoder's code and
    numbers, and says which file it was (field `files`, ctx `file`)."""
    try:
        decoded = decode_image(raw, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                               max_aspect_ratio=limits.max_aspect_ratio)  # fmt: skip
    except CNNCoreError as exc:
        raise CNNCoreError(f"{name!r}: {exc}", "files", code=exc.code,
                           ctx={**exc.ctx, "file": name}) from exc  # fmt: skip
    pixels = shrink(decoded.rgb, limits.side)
    height, width = pixels.shape[:2]
    return PreparedPicture(name, encode_png(pixels, compress_level=6), picture_digest(pixels),
                           width, height)  # fmt: skip


def zip_pictures(
    data: bytes, zip_limits: ZipLimits, limits: PictureLimits
) -> list[tuple[str, PreparedPicture]]:
    """(class folder, picture) for every image of a zip of class folders (one class is
    enough: it may add to a dataset that has others). The archive is checked whole first
    (`cnncore.datasets.user_zip`); any unreadable picture refuses the whole archive."""
    members = read_image_folder_zip(data, zip_limits, min_classes=1)
    return [(label, prepare_picture(raw, name, limits)) for label, name, raw in members]


def load_manifest_images(
    manifest: Path, image_size: int, channels: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A dataset version for training: images N×C×S×S in [0, 1] (C = 1 grey or 3 RGB, each
    picture resized to S×S, bilinear), labels N and the class names, in manifest order. Only
    file names of the manifest's own folder that look like digests are opened."""
    if channels not in (1, 3):
        raise CNNCoreError("channels must be 1 (grayscale) or 3 (RGB)", "data.channels")
    folder = manifest.parent
    described = json.loads(manifest.read_text())
    class_names = [str(c) for c in described["classes"]]
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for digest, label in described["images"]:
        if len(digest) != DIGEST_CHARS or not all(c in "0123456789abcdef" for c in digest):
            raise CNNCoreError(f"the manifest names a file that is not a picture: {digest!r}")
        with Image.open(folder / f"{digest}.png") as image:
            small = image.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(small, dtype=np.float32) / 255.0
        images.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
        labels.append(int(label))
    if not images:
        raise CNNCoreError("the dataset has no pictures yet", "data.dataset")
    return (torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64),
            class_names)  # fmt: skip
