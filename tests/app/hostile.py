"""The hostile-use corpus (issue 17): what a careless or hostile client sends, by category, and a
real `cnnviz serve` to send it to. Used by tests/app/test_hostile_use.py (every answer a 4xx, or
the connection closed, never a 5xx outside deliberate storage faults) and by
benchmarks/hostile_use.py (requests, 4xx, 5xx and peak RSS per category). Loopback only.

Each request is a function of an httpx client (base URL set) returning the status code, 0 when
the server closed the connection without an answer (what it does to slow clients).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
Send = Callable[[httpx.Client], int]
WAIT_S = 20.0  # the most a raw-socket request waits for the server to close it


def listening_socket() -> socket.socket:
    """A loopback socket bound to port 0 (the kernel picks a free port) and listening: handed
    to the server as it is, so no other process can take the port in between."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextmanager
def serving(data_dir: Path, **settings: object) -> Iterator[tuple[int, Path, subprocess.Popen]]:
    """(port, log file, process) of `cnnviz serve` on loopback with its own data folder and
    the given settings (CNNVIZ_<NAME> variables); stopped at the end. The server gets a socket
    this process bound (`--fd`), and the port is read back from it."""
    env = {**os.environ, "CNNVIZ_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
           **{f"CNNVIZ_{k.upper()}": str(v) for k, v in settings.items()}}  # fmt: skip
    log = data_dir / "server.log"
    with listening_socket() as sock, log.open("wb") as sink:
        port = sock.getsockname()[1]
        command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port",
                   str(port), "--fd", str(sock.fileno())]  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink,
                                   pass_fds=[sock.fileno()])  # fmt: skip
        try:
            deadline = time.monotonic() + 180  # a busy shared machine starts slowly
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield port, log, process
        finally:
            process.terminate()
            process.wait(30)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _upload(path: str, fields: dict[str, str], data: bytes) -> Send:
    files = {"image": ("picture.png", data, "image/png")}
    return lambda client: client.post(path, data=fields, files=files).status_code


PICTURE_ROUTES = [("/api/features", {"model": "tinyvgg"}),
                  ("/api/receptive-field/effective", {"model": "lenet5"})]  # fmt: skip


def pictures(corpus: dict[str, bytes]) -> dict[str, Send]:
    """The red team's strips and a 16-bit giant, plus `corpus` (tests/app/test_upload_corpus's
    refused pictures), each to every route that takes a picture."""
    strips = {f"{w}x{h} grey": png(Image.new("L", (w, h), 128))
              for w, h in [(1, 6000), (6000, 1), (1, 10**6), (4 * 10**7, 1)]}  # fmt: skip
    found = {**strips, **corpus}
    return {f"{name} → {path}": _upload(path, fields, data)
            for name, data in found.items() for path, fields in PICTURE_ROUTES}  # fmt: skip


def archives(dataset_id: str, token: str, corpus: dict[str, bytes]) -> dict[str, Send]:
    """Each hostile zip to a dataset's archive upload."""

    def send(data: bytes) -> Send:
        files = {"archive": ("x.zip", data, "application/zip")}
        headers = {"X-Dataset-Token": token}
        path = f"/api/datasets/{dataset_id}/archive"
        return lambda client: client.post(path, files=files, headers=headers).status_code

    return {name: send(data) for name, data in corpus.items()}


JSON_ROUTES = ["/api/conv/trace", "/api/pool/trace", "/api/runs", "/api/sessions",
               "/api/receptive-field/sweep", "/api/receptive-field/effective",
               "/api/gradcheck"]  # fmt: skip
BAD_JSON = {
    "truncated": b'{"input": [[1, 2',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "NaN and infinities": b'{"stride": NaN, "padding": Infinity, "kernel_size": -Infinity}',
    "huge number": b'{"stride": 1' + b"0" * 5000 + b"}",
    "lone surrogate": b'{"label": "\\ud800", "page": "/conv\\udfff", "state": {"k": "\\ud800"}}',
    "wrong types": b'{"input": "x", "kernel": {"a": 1}, "stride": [1], "model": 7}',
    "not an object": b'"just a string"',
    "empty": b"",
    "binary": bytes(range(256)) * 64,
    "3 MB string": b'{"label": "' + b"a" * 3_000_000 + b'"}',
}


def json_bodies(names: tuple[str, ...] | None = None, routes: list[str] = JSON_ROUTES,
                ) -> dict[str, Send]:  # fmt: skip
    """Malformed and hostile JSON (`names` of BAD_JSON, default all) to each of `routes` (and,
    with all, a JSON body labelled as text)."""

    def send(path: str, body: bytes, kind: str = "application/json") -> Send:
        return lambda client: client.post(path, content=body,
                                          headers={"content-type": kind}).status_code  # fmt: skip

    found = {f"{name} → {path}": send(path, body) for name, body in BAD_JSON.items()
             if names is None or name in names for path in routes}  # fmt: skip
    if names is None:
        found |= {f"text/plain → {path}": send(path, b"{}", "text/plain") for path in routes}
    return found


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    """A raw loopback connection that waits at most WAIT_S for anything."""
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting, so the window starts small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection; a socket still
    open after WAIT_S raises TimeoutError."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _raw(port: int, request: bytes, receive_buffer: int | None = None) -> int:
    """Send `request` (an unfinished one), then wait for the server to close: 0 when it closed
    without answering, else the answer's status; TimeoutError when it never closes."""
    with connect(port, receive_buffer) as sock:
        sock.sendall(request)
        received = read_until_closed(sock)
    return int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0


def slow_clients(port: int) -> dict[str, Send]:
    """Clients that send too slowly or not at all: the server must close them."""
    head = b"POST /api/conv/trace HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body = head + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    return {
        "silent connection": lambda _c: _raw(port, b""),
        "head never finished": lambda _c: _raw(port, head),
        "body never finished": lambda _c: _raw(port, body),
    }


def noise_png(seed: int, size: tuple[int, int] = (480, 640)) -> bytes:
    rng = np.random.default_rng(seed)
    return png(Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)))
