"""`cnnviz serve`: one worker serves; several need a PostgreSQL runs database (or, on SQLite,
the explicit override), which is checked before any worker starts."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

import app.cli as cli
from app.http_server import uvicorn_options
from app.settings import ROOT, Settings


@pytest.fixture
def started(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    return calls


def test_several_workers_are_refused_with_the_reason(started):
    with pytest.raises(SystemExit) as refused:
        cli.main(["serve", "--workers", "2"])
    message = str(refused.value.code)
    assert "refused" in message and "CNNVIZ_ALLOW_SEVERAL_WORKERS" in message
    assert "classroom sessions" in message and "feature-map results" in message
    assert "CNNVIZ_DATABASE_URL=postgresql://" in message
    assert started == []  # no server was started


def test_several_workers_start_on_postgres(started, monkeypatch, postgres_url, capsys):
    settings = Settings(database_url=postgres_url)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    cli.main(["serve", "--workers", "2", "--port", "8124"])
    assert started == [{"host": "127.0.0.1", "port": 8124, "workers": 2, "reload": False,
                        **uvicorn_options()}]  # fmt: skip
    assert "classroom sessions" in capsys.readouterr().err  # what stays per worker, said once


def test_an_unreachable_database_stops_serve_before_any_worker(started, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    settings = Settings(database_url=f"postgresql://nobody@127.0.0.1:{port}/none")
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    with pytest.raises(SystemExit, match="the runs database cannot be opened"):
        cli.main(["serve", "--workers", "2"])
    assert started == []


def test_several_workers_start_when_accepted(started, monkeypatch):
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(allow_several_workers=True))
    cli.main(["serve", "--workers", "3", "--port", "8123"])
    assert started == [{"host": "127.0.0.1", "port": 8123, "workers": 3, "reload": False,
                        **uvicorn_options()}]  # fmt: skip


def test_a_bound_socket_serves_one_worker_only(started):
    with pytest.raises(SystemExit, match="--fd serves one worker"):
        cli.main(["serve", "--fd", "7", "--reload"])
    assert started == []


def test_one_worker_serves_the_app(tmp_path):
    """On a socket this test bound to port 0 and handed over (`--fd`): no race for the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    env = {**os.environ, "CNNVIZ_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port",
               str(port), "--fd", str(sock.fileno())]  # fmt: skip
    log = tmp_path / "server.log"
    with (
        sock,
        log.open("wb") as sink,
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            pass_fds=[sock.fileno()],
        ) as server,
    ):
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                    break
                except httpx.HTTPError:
                    assert server.poll() is None, log.read_text()[-2000:]
                    assert time.monotonic() < deadline, "the server did not start within 60 s"
                    time.sleep(0.2)
            assert response.status_code == 200 and response.json()["status"] == "ok"
            page = httpx.get(f"http://127.0.0.1:{port}/conv", timeout=10)
            assert page.status_code == 200 and "content-security-policy" in page.headers
        finally:
            server.terminate()
            server.wait(30)
