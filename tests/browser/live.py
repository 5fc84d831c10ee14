"""Debian's Chromium and a live app server, shared by the browser tests and browser benchmarks.

Playwright's own browser download cannot work offline, so Chromium is Debian's package, launched
with the flags the project prescribes; the app runs under uvicorn on a free loopback port in a
background thread.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(timeout: float = 30.0) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Serve app.main:app on a free loopback port; returns (base URL, server, thread)."""
    from app.main import app

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
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
