"""Getting weights files into the data folder: downloading torchvision's published file, or
importing one brought from elsewhere. Either way the folder ends with the new file whole or
exactly as it was before.

Download (`download_weights`), as torch.hub's `download_url_to_file` does it and then some:
stream into a temporary file in the weights folder while hashing; refuse when the server says
the file is larger than `max_bytes` or the disk has no room for it and its conversion; check the
length the server announced (a dropped connection leaves a short file) and the sha256 prefix the
file name carries (the full digest is recorded); read it with `torch.load(weights_only=True)`
(no pickle code runs), bring it to our layout, check every key and shape, write safetensors with
its provenance (`cnncore.pretrained.write_weights`: temporary file, then `os.replace`). Every
refusal is a `WeightsFileError` with a stable code; temporary files are removed on every path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors.torch import load_file

from cnncore.errors import CNNCoreError
from cnncore.models import build_model
from cnncore.pretrained import (
    IMAGENET_LABELS,
    IMAGENET_RECIPE,
    PUBLISHED,
    PUBLISHED_CONFIG,
    InstalledWeights,
    PublishedWeights,
    check_layout,
    torchvision_layout,
    write_weights,
)

__all__ = ["WeightsFileError", "download_weights", "import_weights", "read_state_dict"]

Progress = Callable[[int, int | None], None]  # bytes so far, total (None: not announced)
CHUNK = 1 << 20
# room asked for on disk: the download, its safetensors copy and a margin
ROOM_FACTOR = 2.1


class WeightsFileError(CNNCoreError):
    """A weights file that could not be fetched, read or kept (the code says why)."""

    code = "weights_file"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _room(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if needed * ROOM_FACTOR > free:
        raise WeightsFileError(
            f"not enough disk space in {directory}: {needed * ROOM_FACTOR / 1e6:.0f} MB needed, "
            f"{free / 1e6:.0f} MB free",
            "file",
            code="weights_disk_full",
            ctx={"needed": int(needed * ROOM_FACTOR), "free": free},
        )


def _disk_full(exc: OSError, directory: Path) -> WeightsFileError:
    return WeightsFileError(
        f"the disk holding {directory} is full: {exc.strerror}",
        "file",
        code="weights_disk_full",
        ctx={"needed": 0, "free": 0},
    )


def read_state_dict(path: Path, suffix: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or .pth/.pt through `torch.load(weights_only=True)`;
    `suffix` overrides the file's own (a download's temporary file)."""
    suffix = suffix or path.suffix
    try:
        if suffix == ".safetensors":
            return load_file(str(path))
        if suffix not in (".pth", ".pt"):
            raise WeightsFileError(
                f"{path.name}: a weights file ends in .pth, .pt or .safetensors", "file",
                code="weights_file_kind", ctx={"file": path.name},
            )  # fmt: skip
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except WeightsFileError:
        raise
    except Exception as exc:  # weights_only refusals and corrupt files raise many kinds
        raise WeightsFileError(
            f"{path.name} cannot be read as weights: {exc}", "file",
            code="weights_file_unreadable", ctx={"file": path.name},
        ) from exc  # fmt: skip
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsFileError(
            f"{path.name} holds no state dict (a mapping of names to tensors)", "file",
            code="weights_file_unreadable", ctx={"file": path.name},
        )  # fmt: skip
    return dict(state)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _install(directory: Path, name: str, source: Path, meta: InstalledWeights) -> Path:
    """Read, adapt, check and write `source` as `name`'s installed weights."""
    suffix = Path(meta.original_file).suffix
    state = torchvision_layout(name, read_state_dict(source, suffix))
    check_layout(name, state, build_model(name, device="meta", **meta.config))
    try:
        return write_weights(directory, name, state, meta)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(exc, directory) from exc
        raise


def _provenance(name: str, published: PublishedWeights | None, original: str, digest: str,
                url: str | None = None) -> InstalledWeights:  # fmt: skip
    """The metadata of a file made from `original`: torchvision's published file when
    `published` is given (its URL, labels and accuracy), else an `imported` one."""
    return InstalledWeights(
        model=name,
        source="imagenet" if published else "imported",
        url=(url or published.url) if published else None,
        original_file=original,
        sha256=digest,
        labels=IMAGENET_LABELS if published else None,
        preprocessing=IMAGENET_RECIPE,
        top1=published.top1 if published else None,
        top5=published.top5 if published else None,
        # torchvision's layout of this model (googlenet: transform_input), whatever the source
        config=PUBLISHED_CONFIG.get(name, {}),
        installed=_now(),
    )


def import_weights(directory: Path, name: str, file: Path) -> Path:
    """Install a file downloaded elsewhere (.pth/.pt/.safetensors) as `name`'s weights.

    When its digest starts with the prefix of torchvision's published file for `name`, it is
    that file and carries its URL and published accuracy; otherwise it is `imported`.
    """
    if not file.is_file():
        raise WeightsFileError(f"{file} is not a file", "file", code="weights_file_unreadable",
                               ctx={"file": file.name})  # fmt: skip
    digest = _sha256(file)
    published = PUBLISHED.get(name)
    known = published is not None and digest.startswith(published.sha256_prefix)
    directory.mkdir(parents=True, exist_ok=True)
    _room(directory, file.stat().st_size)
    meta = _provenance(name, published if known else None, file.name, digest)
    return _install(directory, name, file, meta)


def _http_error(url: str, exc: Exception) -> WeightsFileError:
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()  # it holds the answer's socket
        return WeightsFileError(
            f"{url} answered HTTP {exc.code} {exc.reason}", "url",
            code="weights_http", ctx={"url": url, "status": exc.code},
        )  # fmt: skip
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError | socket.timeout):
        return WeightsFileError(f"{url} did not answer in time ({reason})", "url",
                                code="weights_timeout", ctx={"url": url})  # fmt: skip
    return WeightsFileError(
        f"{url} cannot be reached ({reason}): is this machine offline? Download the file on a "
        "connected machine and import it with `cnnviz weights add`", "url",
        code="weights_offline", ctx={"url": url},
    )  # fmt: skip


def _fetch(url: str, target: Path, *, timeout: float, max_bytes: int, progress: Progress | None,
           directory: Path) -> str:  # fmt: skip
    """Stream `url` into `target`; the sha256 of what arrived."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (https URLs)
            length = answer.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None:
                if total > max_bytes:
                    raise WeightsFileError(
                        f"{url} is {total} bytes, more than the limit of {max_bytes}", "url",
                        code="weights_too_large", ctx={"size": total, "limit": max_bytes},
                    )  # fmt: skip
                _room(directory, total)
            received = 0
            with target.open("wb") as out:
                while block := answer.read(CHUNK):
                    received += len(block)
                    if received > max_bytes:
                        raise WeightsFileError(
                            f"{url} sent more than the limit of {max_bytes} bytes", "url",
                            code="weights_too_large", ctx={"size": received, "limit": max_bytes},
                        )  # fmt: skip
                    out.write(block)
                    digest.update(block)
                    if progress is not None:
                        progress(received, total)
    except WeightsFileError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(exc, directory) from exc
        if isinstance(exc, urllib.error.HTTPError | urllib.error.URLError | TimeoutError):
            raise _http_error(url, exc) from exc
        raise WeightsFileError(f"{url}: the download broke off ({exc})", "url",
                               code="weights_truncated", ctx={"url": url}) from exc  # fmt: skip
    except Exception as exc:  # http.client.IncompleteRead and kin on a dropped connection
        raise WeightsFileError(f"{url}: the download broke off ({exc})", "url",
                               code="weights_truncated", ctx={"url": url}) from exc  # fmt: skip
    if total is not None and received != total:
        raise WeightsFileError(
            f"{url}: {received} of {total} bytes arrived; the download broke off", "url",
            code="weights_truncated", ctx={"url": url},
        )  # fmt: skip
    return digest.hexdigest()


def download_weights(
    directory: Path,
    name: str,
    *,
    url: str | None = None,
    timeout: float = 30.0,
    max_bytes: int = 1_000_000_000,
    progress: Progress | None = None,
    published: PublishedWeights | None = None,
) -> Path:
    """Download torchvision's published ImageNet file for `name` (or the same file from `url`,
    a mirror) and install it; see the module docstring for every check on the way.
    `published`: the catalogue entry to check against (default: `PUBLISHED[name]`)."""
    published = published or PUBLISHED.get(name)
    if published is None:
        raise WeightsFileError(
            f"torchvision publishes no ImageNet weights for {name}; these models have some: "
            f"{', '.join(PUBLISHED)}", "model", code="weights_not_published", ctx={"model": name},
        )  # fmt: skip
    source = url or published.url
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".download", dir=directory)
    os.close(handle)
    part = Path(temporary)
    try:
        digest = _fetch(source, part, timeout=timeout, max_bytes=max_bytes, progress=progress,
                        directory=directory)  # fmt: skip
        if not digest.startswith(published.sha256_prefix):
            raise WeightsFileError(
                f"{source}: sha256 {digest[:16]}… does not start with {published.sha256_prefix}, "
                "the prefix in the published file's name: the file is damaged or not the "
                "published one", "url",
                code="weights_digest", ctx={"expected": published.sha256_prefix,
                                            "got": digest[: len(published.sha256_prefix)]},
            )  # fmt: skip
        meta = _provenance(name, published, published.file_name, digest, url=source)
        return _install(directory, name, part, meta)
    finally:
        part.unlink(missing_ok=True)
