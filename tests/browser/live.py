"""Debian's Chromium and a live app server, shared by the browser tests and browser benchmarks.

Playwright's own browser download cannot work offline, so Chromium is Debian's package, launched
with the flags the project prescribes; the app runs under uvicorn on a free loopback port in a
background thread.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import uvicorn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


ROOT = Path(__file__).resolve().parents[2]


def ensure_vendor() -> None:
    """The npm libraries the pages import (`make vendor`: pinned, into build/npm), installed if
    this checkout lacks them — as `make test` and `make run` do first."""
    from app.main import VENDORED

    missing = [n for n in VENDORED if not (ROOT / "build/npm/node_modules" / n / "dist").is_dir()]
    if missing:
        subprocess.run(["make", "-s", "vendor"], cwd=ROOT, check=True, timeout=300)


def start_server(timeout: float = 30.0) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Serve app.main:app on a free loopback port; returns (base URL, server, thread). The
    socket is bound here, to port 0, and handed to uvicorn as it is: no other process can take
    the port between choosing it and listening on it."""
    from app.main import app

    ensure_vendor()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server",
                              daemon=True)  # fmt: skip
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)
