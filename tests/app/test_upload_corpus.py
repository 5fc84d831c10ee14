"""Hostile and unusual uploads, generated here: each gets a clear 4xx (or 200 when the picture is
valid but unusual), never a 5xx; nothing is written outside the data folder; memory stays bounded.

Pictures go to `POST /api/features`. There is no dataset-upload endpoint (runs train bundled or
local datasets only), so zip archives go straight to the loader an endpoint would call,
`cnncore.datasets.user_zip.load_image_folder_zip`.
"""

from __future__ import annotations

import io
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from uploads import declared_upload

from app.main import app
from app.settings import get_settings
from cnncore.datasets.user_zip import ZipLimits, load_image_folder_zip
from cnncore.errors import CNNCoreError

client = TestClient(app)
SETTINGS = get_settings()
MB = 1 << 20
# A decoded 20 000 × 20 000 RGB picture would need 1.2 GB; refusing from the header costs ~0.
PEAK_BUDGET = 64 * MB


# --- measuring: peak memory and what was written ----------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@contextmanager
def peak_growth() -> Iterator[list[int]]:
    """Yields a list that receives the peak RSS growth in bytes over the block.

    Resets the kernel's high-water mark (`/proc/self/clear_refs`, "5") when allowed; otherwise
    samples VmRSS every millisecond (a bomb being decoded takes far longer than that)."""
    start = _status_kib("VmRSS")
    result: list[int] = []
    try:
        Path("/proc/self/clear_refs").write_text("5")
        yield result
        result.append((_status_kib("VmHWM") - start) * 1024)
    except OSError:
        peak, done = [start], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _status_kib("VmRSS"))
                time.sleep(0.001)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        yield result
        done.set()
        sampler.join()
        result.append((peak[0] - start) * 1024)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Temporary files and the working folder redirected to empty folders, to be checked after:
    the app may write only under its data folder."""
    temp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    temp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)
    yield tmp_path
    assert _tree(temp) == set(), "temporary files were left behind"
    assert _tree(cwd) == set(), "something was written to the working folder"


# --- the picture corpus -----------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_file(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    """A hand-made 8-bit RGB PNG whose header may claim any size, with any IDAT payload."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + extra
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zeros_deflated(size: int) -> bytes:
    """`size` zero bytes, deflated (~1000:1) without ever holding them all."""
    packer, block = zlib.compressobj(9), bytes(MB)
    whole = b"".join(packer.compress(block) for _ in range(size // MB))
    return whole + packer.compress(bytes(size % MB)) + packer.flush()


RNG = np.random.default_rng(8)
RGB = Image.fromarray(RNG.integers(0, 256, (48, 40, 3), dtype=np.uint8))
PNG = encode(RGB, "PNG")
JPEG = encode(RGB, "JPEG", quality=90)


TEXT_BOMB = png_chunk(b"zTXt", b"Comment\0\0" + zeros_deflated(50 * MB))


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 24), colour) for colour in ("red", "lime", "blue")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def huge_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: an APP1 segment near its 64 KiB maximum
    exif[0x0112] = 99  # an orientation value that does not exist
    return encode(RGB, "JPEG", exif=exif.tobytes())


def with_size(data: bytes, offset: int, fmt: str, width: int, height: int) -> bytes:
    patched = bytearray(data)
    patched[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, width, height)
    return bytes(patched)


def jpeg_claiming(width: int, height: int) -> bytes:
    sof = JPEG.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    return with_size(JPEG, sof + 5, ">HH", height, width)


REFUSED = {
    "zero bytes": (b"", "empty"),
    "plain text": (b"hello, this is not a picture\n" * 20, "not a readable image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>', "readable"),
    "tiff (not accepted)": (encode(RGB, "TIFF"), "not a readable image"),
    "png with gif magic": (b"GIF89a" + PNG[6:], ""),
    "png with jpeg magic": (b"\xff\xd8\xff\xe0" + PNG[4:], ""),
    "png, first byte flipped": (b"\x88" + PNG[1:], "not a readable image"),
    "truncated png": (PNG[: len(PNG) // 2], ""),
    "truncated jpeg": (JPEG[: len(JPEG) // 2], ""),
    "png header only": (PNG[:33], ""),
    "png bomb 20000x20000": (png_file(20_000, 20_000, zeros_deflated(32 * MB)), "pixels"),
    # a real bomb: 200 kB whose IDAT inflates to the whole 192 MB canvas
    "png over the pixel limit": (png_file(8_000, 8_000, zeros_deflated(8_000 * 24_001)), "pixels"),
    "jpeg claiming 65500x65500": (jpeg_claiming(65_500, 65_500), "pixels"),
    "gif screen 65535x65535": (with_size(encode(RGB, "GIF"), 6, "<HH", 65_535, 65_535), "pixels"),
    "bmp claiming 30000x30000": (with_size(encode(RGB, "BMP"), 18, "<ii", 30_000, 30_000), ""),
    # 48 kB of zTXt that inflates to 50 MB (Pillow stops text chunks at 1 MB).
    "png ztxt bomb": (png_file(1, 1, zlib.compress(bytes(4)), TEXT_BOMB), ""),
}

# Valid but unusual: (bytes, format found, colour mode found).
ACCEPTED = {
    "animated gif": (animated_gif(), "GIF", "P"),
    "16-bit png": (
        encode(Image.fromarray(RNG.integers(0, 65_536, (30, 20), dtype=np.uint16)), "PNG"),
        "PNG",
        "I;16",
    ),
    "cmyk jpeg": (encode(RGB.convert("CMYK"), "JPEG"), "JPEG", "CMYK"),
    "huge exif jpeg": (huge_exif_jpeg(), "JPEG", "RGB"),
    "1x1 png": (encode(Image.new("RGB", (1, 1), "white"), "PNG"), "PNG", "RGB"),
    "palette png with transparency": (encode(RGB.convert("P"), "PNG", transparency=0), "PNG", "P"),
}


# Every endpoint that takes a picture upload.
PICTURE_ENDPOINTS = ["/api/features", "/api/receptive-field/effective"]


def post_picture(data: bytes, filename: str = "upload.bin", endpoint: str = "/api/features"):
    return client.post(
        endpoint,
        data={"model": "lenet5"},
        files={"image": (filename, data, "application/octet-stream")},
    )


def assert_refused(response, status: int, field: str | None = "image", words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    if field is not None:
        assert detail[0]["loc"] == ["body", field]
        assert words in detail[0]["msg"]


@pytest.mark.parametrize("endpoint", PICTURE_ENDPOINTS)
def test_every_bad_picture_is_a_clear_422(endpoint, sandbox):
    assert post_picture(PNG, endpoint=endpoint).status_code == 200  # models built before measuring
    data_before = _tree(SETTINGS.data_dir)
    with peak_growth() as growth:
        for name, (data, words) in REFUSED.items():
            response = post_picture(data, f"{name}.png", endpoint)
            assert response.status_code == 422, (name, response.status_code, response.text)
            assert_refused(response, 422, "image", words)
    assert growth[0] < PEAK_BUDGET, f"peak memory grew {growth[0] / MB:.0f} MB"
    assert _tree(SETTINGS.data_dir) >= data_before  # nothing of the app's own was removed


@pytest.mark.parametrize("name", ACCEPTED)
def test_unusual_valid_pictures_are_read(name, sandbox):
    data, fmt, mode = ACCEPTED[name]
    response = post_picture(data)
    assert response.status_code == 200, response.text
    found = response.json()["input"]
    assert (found["format"], found["mode"], found["source"]) == (fmt, mode, "upload")
    effective = post_picture(data, endpoint="/api/receptive-field/effective")
    assert effective.status_code == 200, effective.text


def test_animated_gif_gives_its_first_frame(sandbox):
    body = post_picture(animated_gif()).json()
    preview = client.get(next(s["url"] for s in body["preprocessing"] if s["step"] == "original"))
    pixels = np.asarray(Image.open(io.BytesIO(preview.content)).convert("RGB"), dtype=int)
    assert np.abs(pixels - [255, 0, 0]).max() <= 2  # red, the first frame


# --- oversized and malformed multipart bodies -------------------------------------------------


@pytest.mark.parametrize("endpoint", PICTURE_ENDPOINTS)
def test_real_upload_over_the_limit_is_413_and_costs_no_parse(endpoint, sandbox):
    big = PNG + bytes(SETTINGS.max_upload_bytes + 100_000)
    with peak_growth() as growth:
        assert_refused(post_picture(big, endpoint=endpoint), 413, "image", "bytes")
    # The client holds the body (~20 MB) twice while encoding; the server never parses it.
    assert growth[0] < 3 * len(big) + PEAK_BUDGET


def test_declared_length_beyond_any_upload_is_413_before_reading():
    response = declared_upload(client, 10**12)
    assert_refused(response, 413, None)
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_picture_one_byte_over_the_file_limit_is_refused(sandbox):
    response = post_picture(PNG + bytes(SETTINGS.max_upload_bytes + 1 - len(PNG)))
    assert response.status_code in (413, 422)
    assert response.json()["detail"][0]["loc"] == ["body", "image"]


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "multipart/form-data"}, b"no boundary"),  # no boundary parameter
        ({"content-type": "multipart/form-data; boundary=b"}, b"--b\r\ngarbage\r\n--b--\r\n"),
        (
            {"content-type": "multipart/form-data; boundary=b"},
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
            + b"x" * (2 * MB)
            + b"\r\n--b--\r\n",
        ),  # one text field over Starlette's 1 MB part limit
        ({"content-type": "application/json"}, b'{"model": "lenet5"}'),
    ],
)
def test_malformed_multipart_is_a_4xx(headers, body, sandbox):
    response = client.post("/api/features", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()


def test_two_pictures_in_one_request_are_refused(sandbox):
    files = [("image", ("a.png", PNG, "image/png")), ("image", ("b.png", PNG, "image/png"))]
    response = client.post("/api/features", data={"model": "lenet5"}, files=files)
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_a_body_without_length_is_refused(sandbox):
    response = client.post(
        "/api/features",
        content=iter([b"--b\r\n", b"x" * 1000]),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.request.headers.get("content-length") is None
    assert response.status_code == 411


# --- dataset archives (the loader an upload endpoint would call) ------------------------------


def zip_of(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


SMALL_PNG = encode(Image.new("L", (8, 8), 128), "PNG")
TWO_CLASSES = [("cats/1.png", SMALL_PNG), ("dogs/1.png", SMALL_PNG)]


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def streamed_zeros_zip(members: int, each: int) -> bytes:
    """Class folders of members inflating to `each` zero bytes, written without holding them."""
    buffer, block = io.BytesIO(), bytes(MB)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            with archive.open(f"class{i % 2}/{i}.png", "w", force_zip64=True) as member:
                for _ in range(each // MB):
                    member.write(block)
    return buffer.getvalue()


def patched(data: bytes, local_offset: int, central_offset: int, value: bytes) -> bytes:
    """Overwrite a field of the first member in its local header and central directory entry."""
    out = bytearray(data)
    out[local_offset : local_offset + len(value)] = value
    central = out.index(b"PK\x01\x02")
    out[central + central_offset : central + central_offset + len(value)] = value
    return bytes(out)


ONE_MB_MEMBER = zip_of([("cats/1.png", SMALL_PNG + bytes(MB)), ("dogs/1.png", SMALL_PNG)])
HOSTILE_ARCHIVES = {
    "dot-dot path": (zip_of([*TWO_CLASSES, ("../evil/1.png", SMALL_PNG)]), "'..'"),
    "dot-dot inside": (zip_of([*TWO_CLASSES, ("cats/../../evil.png", SMALL_PNG)]), "'..'"),
    "absolute path": (zip_of([*TWO_CLASSES, ("/tmp/evil/1.png", SMALL_PNG)]), "absolute"),
    "drive letter": (zip_of([*TWO_CLASSES, ("C:/evil/1.png", SMALL_PNG)]), "absolute"),
    "backslashes": (zip_of([*TWO_CLASSES, ("cats\\..\\..\\evil.png", SMALL_PNG)]), "absolute"),
    "symbolic link": (zip_of([*TWO_CLASSES, (symlink("cats/2.png"), b"/etc/passwd")]), "link"),
    "zip bomb, one member": (streamed_zeros_zip(2, 300 * MB), "inflates"),
    "zip bomb, many members": (streamed_zeros_zip(40, 8 * MB), "inflates"),
    "picture bomb inside": (
        zip_of([*TWO_CLASSES, ("cats/2.png", png_file(20_000, 20_000, zeros_deflated(MB)))]),
        "pixels",
    ),
    "size that lies": (patched(ONE_MB_MEMBER, 22, 24, struct.pack("<I", 50)), "cannot be read"),
    "unknown compression": (
        patched(zip_of(TWO_CLASSES), 8, 10, struct.pack("<H", 99)),
        "cannot be read",
    ),
    "encrypted member": (
        patched(zip_of(TWO_CLASSES), 6, 8, struct.pack("<H", 1)),
        "cannot be read",
    ),
    "not a zip": (b"PK\x03\x04 but nothing else", "not a zip"),
    "one class only": (zip_of([("cats/1.png", SMALL_PNG), ("cats/2.png", SMALL_PNG)]), "class"),
}


@pytest.fixture
def inside_a_folder(tmp_path, monkeypatch) -> Iterator[Path]:
    """Work two levels down, so a `../` escape would land in a folder we can watch."""
    work = tmp_path / "data" / "upload"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    yield tmp_path
    assert _tree(tmp_path) == {"data", "data/upload"}, "the loader wrote files"


@pytest.mark.parametrize("name", HOSTILE_ARCHIVES)
def test_hostile_archives_are_refused_without_writing_or_inflating(name, inside_a_folder):
    data, words = HOSTILE_ARCHIVES[name]
    with peak_growth() as growth, pytest.raises(CNNCoreError) as refused:
        load_image_folder_zip(data, image_size=8)
    assert refused.value.field == "archive" and words in str(refused.value)
    assert growth[0] < PEAK_BUDGET, f"peak memory grew {growth[0] / MB:.0f} MB"


def test_the_same_archive_without_the_hostile_entry_loads():
    images, labels, names = load_image_folder_zip(zip_of(TWO_CLASSES), image_size=8)
    assert names == ["cats", "dogs"] and images.shape == (2, 1, 8, 8)
    assert labels.tolist() == [0, 1]


GOOD_ARCHIVE = zip_of([*TWO_CLASSES, ("cats/2.png", SMALL_PNG), ("dogs/2.png", SMALL_PNG)])


@given(
    st.lists(
        st.tuples(st.integers(0, len(GOOD_ARCHIVE) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_archives_are_refused_or_read_never_crash(edits):
    damaged = bytearray(GOOD_ARCHIVE)
    for position, value in edits:
        damaged[position] = value
    try:
        images, labels, _ = load_image_folder_zip(
            bytes(damaged), image_size=8, limits=ZipLimits(max_total_bytes=4 * MB)
        )
    except CNNCoreError as exc:
        assert exc.field == "archive"
    else:
        assert len(images) == len(labels) <= 4
