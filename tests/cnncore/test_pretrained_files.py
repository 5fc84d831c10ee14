"""Downloading and importing weights, against a loopback server only (tests/cnncore/
weights_server.py): a right file installs with its provenance; a wrong digest, a file cut short,
a slow server, a 404, no network, a full disk and a file too large each give a clear refusal
with a stable code and leave the weights folder exactly as it was."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import socket
from collections import namedtuple
from functools import cache
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from cnncore.pretrained import installed, load_pretrained
from cnncore.pretrained_files import WeightsFileError, download_weights, import_weights
from tests.cnncore.torchvision_reference import FIXTURES
from tests.cnncore.weights_server import Served, entry_for, published_file, weights_server

NAME = "mobilenet_v2"  # the smallest published file (14 MB), and one whose names are adapted


@cache
def mobilenet_file() -> tuple[bytes, str]:
    layout = json.loads(FIXTURES.read_text())[NAME]["layout"]
    return published_file(NAME, layout)


def folder_state(directory: Path) -> dict[str, str]:
    """Every file in the folder (hidden temporaries included) with its digest."""
    if not directory.exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def server():
    with weights_server() as running:
        yield running


@pytest.fixture
def earlier(tmp_path) -> Path:
    """A weights folder that already holds an installed mobilenet_v2 (other values)."""
    directory = tmp_path / "weights"
    body, _ = mobilenet_file()
    source = tmp_path / "earlier.pth"
    state = torch.load(io.BytesIO(body), weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, source)
    import_weights(directory, NAME, source)
    return directory


def refused_download(
    server,
    earlier: Path,
    digest: str | None = None,
    served: bool = True,
    mode: str = "whole",
    delay: float = 0.0,
    **options,
) -> WeightsFileError:
    """Download mobilenet_v2 over the installed one (its file served as `mode`; not served: a
    404), expecting a refusal; the refusal, once the folder is checked to be exactly as it was."""
    body, published = mobilenet_file()
    entry = entry_for(server, NAME, digest or published)
    if served:
        server.files[entry.file_name] = Served(body, mode, delay)
    before = folder_state(earlier)
    with pytest.raises(WeightsFileError) as refused:
        download_weights(earlier, NAME, published=entry, **options)
    assert folder_state(earlier) == before
    return refused.value


def test_a_published_file_with_its_digest_installs_as_safetensors_with_provenance(tmp_path, server):
    body, digest = mobilenet_file()
    entry = entry_for(server, NAME, digest)
    server.files[entry.file_name] = Served(body)
    seen = []
    directory = tmp_path / "weights"
    path = download_weights(directory, NAME, published=entry,
                            progress=lambda got, total: seen.append((got, total)))  # fmt: skip
    assert path == directory / "mobilenet_v2.safetensors"
    assert [p.name for p in directory.iterdir()] == ["mobilenet_v2.safetensors"]
    assert seen[-1] == (len(body), len(body)) and len(seen) >= 2  # 1 MiB chunks
    with safe_open(str(path), framework="pt") as handle:
        meta = {k: json.loads(v) for k, v in handle.metadata().items()}
    assert meta["sha256"] == digest and meta["url"] == entry.url
    assert (meta["top1"], meta["top5"]) == (71.878, 90.286)
    assert meta["labels"] == "imagenet-1k" and meta["source"] == "imagenet"
    assert meta["preprocessing"] == {"resize": 256, "crop": 224, "interpolation": "bilinear",
                                     "mean": [0.485, 0.456, 0.406],
                                     "std": [0.229, 0.224, 0.225]}  # fmt: skip
    loaded = load_pretrained(NAME, "imagenet", directory=directory)
    original = torch.load(io.BytesIO(body), weights_only=True)
    projection = loaded.model.features[1].conv[1].weight
    assert torch.equal(projection, original["features.1.conv.1.weight"])
    assert installed(directory)[NAME].sha256 == digest


def test_a_file_of_another_digest_is_refused_and_nothing_changes(tmp_path, server, earlier):
    _, digest = mobilenet_file()
    wrong = "0" * 64 if not digest.startswith("0") else "1" * 64
    refused = refused_download(server, earlier, digest=wrong)
    assert refused.code == "weights_digest"
    assert "does not start with" in str(refused)


def test_a_download_cut_short_is_refused_and_nothing_changes(tmp_path, server, earlier):
    assert refused_download(server, earlier, mode="truncated").code == "weights_truncated"


def test_a_server_that_does_not_answer_in_time_is_refused(tmp_path, server, earlier):
    refused = refused_download(server, earlier, mode="slow", delay=2.0, timeout=0.3)
    assert refused.code == "weights_timeout"


def test_a_404_names_the_status(tmp_path, server, earlier):
    refused = refused_download(server, earlier, served=False)
    assert refused.code == "weights_http" and refused.ctx["status"] == 404
    assert "HTTP 404" in str(refused)


# A loopback port bound for the whole module and never listening: connecting is refused, and no
# other process can take the port meanwhile (one picked, closed and used later could be).
_REFUSING = socket.socket()
_REFUSING.bind(("127.0.0.1", 0))
REFUSING_PORT = _REFUSING.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _refusing_port_closed_at_the_end():
    yield
    _REFUSING.close()


@pytest.mark.parametrize("url", [f"http://127.0.0.1:{REFUSING_PORT}/mobilenet_v2-b0353104.pth",
                                 "http://weights.invalid/mobilenet_v2-b0353104.pth"])  # fmt: skip
def test_no_network_at_all_says_offline_and_how_to_import(tmp_path, earlier, url):
    before = folder_state(earlier)
    with pytest.raises(WeightsFileError) as refused:
        download_weights(earlier, NAME, url=url, timeout=2)
    assert refused.value.code == "weights_offline"
    assert "cnnviz weights add" in str(refused.value)
    assert folder_state(earlier) == before


def test_a_full_disk_while_writing_is_refused_and_nothing_changes(tmp_path, server, earlier,
                                                                  monkeypatch):  # fmt: skip
    real_open = Path.open

    def full_disk_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if "w" in mode and self.suffix == ".download":

            def write(_data):
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr(Path, "open", full_disk_open)
    assert refused_download(server, earlier).code == "weights_disk_full"


def test_too_little_free_space_is_refused_before_downloading(tmp_path, server, earlier,
                                                             monkeypatch):  # fmt: skip
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 10**6, 10**6))
    assert refused_download(server, earlier).code == "weights_disk_full"


def test_a_file_larger_than_the_limit_is_refused(tmp_path, server, earlier):
    refused = refused_download(server, earlier, max_bytes=1000)
    assert refused.code == "weights_too_large" and refused.ctx["limit"] == 1000


def test_a_model_torchvision_does_not_publish_is_refused(tmp_path):
    with pytest.raises(WeightsFileError) as refused:
        download_weights(tmp_path, "lenet5")
    assert refused.value.code == "weights_not_published"
    assert not tmp_path.joinpath("lenet5.safetensors").exists()


def test_importing_the_published_file_is_recognised_by_its_digest(tmp_path, monkeypatch):
    body, digest = mobilenet_file()
    from cnncore import pretrained_files

    real = pretrained_files.PUBLISHED[NAME]
    fake = type(real)(NAME, f"https://example.invalid/{NAME}-{digest[:8]}.pth", real.top1,
                      real.top5, real.params, real.recipe)  # fmt: skip
    monkeypatch.setitem(pretrained_files.PUBLISHED, NAME, fake)
    source = tmp_path / f"{NAME}-{digest[:8]}.pth"
    source.write_bytes(body)
    import_weights(tmp_path / "weights", NAME, source)
    meta = installed(tmp_path / "weights")[NAME]
    assert (meta.source, meta.top1, meta.url, meta.sha256) == ("imagenet", 71.878, fake.url, digest)


def test_a_safetensors_file_imports_and_another_suffix_is_refused(tmp_path):
    body, _ = mobilenet_file()
    from safetensors.torch import save_file

    state = torch.load(io.BytesIO(body), weights_only=True)
    save_file(state, str(tmp_path / "m.safetensors"))
    import_weights(tmp_path / "weights", NAME, tmp_path / "m.safetensors")
    assert installed(tmp_path / "weights")[NAME].source == "imported"
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(WeightsFileError) as refused:
        import_weights(tmp_path / "weights", NAME, tmp_path / "m.bin")
    assert refused.value.code == "weights_file_kind"
