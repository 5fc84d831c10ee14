"""Cheap SSE viewers for benchmarks: one asyncio protocol per connection that only keeps each
received piece of bytes with its arrival time; the HTTP and SSE parsing happens afterwards
(`RawViewer.events()`), when nothing is being measured. Fifty of them in one process cost the
shared machine far less than fifty httpx streams parsing as they read, so what a benchmark
measures is the server, not its clients. Also the server they watch (`serve`): uvicorn, one
worker, from this checkout or another one (to measure two versions in one run), and the one
start-and-wait-for-health (`start_server`) every benchmark that runs a server process uses.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["HOST", "ROOT", "RawViewer", "Received", "free_port", "open_viewer",
           "process_cpu_seconds", "serve", "start_server", "uvicorn"]

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its threads, not its children), from /proc
    (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def uvicorn(port: int) -> list[str]:
    """The command line of uvicorn, one worker (as deployed), serving the app on `port`."""
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", str(port),
            "--workers", "1", "--log-level", "warning"]  # fmt: skip


def start_server(command: list[str], port: int, *, cwd: Path, env: dict[str, str],
                 log=None) -> subprocess.Popen:  # fmt: skip
    """Start a server process and wait (60 s at most) until its /api/health answers 200; its
    output goes to `log` (stdout and stderr together) when given."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log and
                               subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://{HOST}:{port}/api/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server in {cwd} did not answer /api/health within 60 s")


def serve(root: Path, data_dir: str, port: int, log=None) -> subprocess.Popen:
    """uvicorn (one worker, as deployed) running the app of the checkout at `root`."""
    env = {**os.environ, "CNNVIZ_DATA_DIR": data_dir, "PYTHONPATH": str(root)}
    return start_server(uvicorn(port), port, cwd=root, env=env, log=log)


@dataclass(frozen=True)
class Received:
    event_id: int
    event: dict[str, Any]  # the SSE message's data, decoded
    at: float  # perf_counter() when its last byte arrived
    wall: float  # time.time() then (the worker stamps events with time.time())


class RawViewer(asyncio.Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.pieces: list[bytes] = []
        self.times: list[tuple[float, float]] = []  # (perf_counter, time) per piece
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.times.append((time.perf_counter(), time.time()))

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    @property
    def answered(self) -> bool:
        """The response has begun (the server has registered this viewer)."""
        return bool(self.pieces)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def received_bytes(self) -> int:
        return sum(len(p) for p in self.pieces)

    def events(self) -> list[Received]:
        """Every complete SSE message with data, with the arrival of its last byte."""
        raw = b"".join(self.pieces)
        ends, total = [], 0  # raw offset where each piece ends
        for piece in self.pieces:
            total += len(piece)
            ends.append(total)
        head = raw.find(b"\r\n\r\n")
        if head < 0:
            return []
        status = raw[: raw.find(b"\r\n")]
        if b" 200 " not in status:
            raise RuntimeError(f"the server answered {status.decode(errors='replace')}")
        # De-chunk (HTTP/1.1 chunked transfer coding), remembering each body byte's raw offset.
        body, raw_at_body = bytearray(), []  # raw offset of each body chunk's end
        body_ends = []
        at = head + 4
        while True:
            line_end = raw.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(raw[at:line_end].split(b";")[0], 16)
            if size == 0 or line_end + 2 + size > len(raw):
                break
            body += raw[line_end + 2 : line_end + 2 + size]
            body_ends.append(len(body))
            raw_at_body.append(line_end + 2 + size)
            at = line_end + 2 + size + 2
        found, start = [], 0
        text = bytes(body)
        while True:
            end = text.find(b"\r\n\r\n", start)
            if end < 0:
                break
            block, start = text[start:end], end + 4
            data = block.find(b"data: ")
            ident = block.find(b"id: ")
            if data < 0 or ident < 0:
                continue
            event_id = int(block[ident + 4 : block.find(b"\r\n", ident)])
            payload = b"".join(line[6:] for line in block[data:].split(b"\r\n")
                               if line.startswith(b"data: "))  # fmt: skip
            raw_end = raw_at_body[bisect.bisect_left(body_ends, end + 4)]
            perf, wall = self.times[bisect.bisect_left(ends, raw_end)]
            found.append(Received(event_id, json.loads(payload), perf, wall))
        return found


async def open_viewer(host: str, port: int, path: str, last_event_id: int = 0) -> RawViewer:
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
               f"{extra}\r\n").encode()  # fmt: skip
    loop = asyncio.get_running_loop()
    _, viewer = await loop.create_connection(lambda: RawViewer(request), host, port)
    return viewer
