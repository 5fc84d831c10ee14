"""HTTP against a real `cnnviz serve` on loopback: deadlines for slow heads, bodies and readers,
the connection cap, HEAD, allowed hosts and multipart bodies on JSON routes.

One server for the module, with short deadlines (1 s) and a cap of 8 connections, spoken to with
raw sockets where a client must misbehave. Every wait is bounded and waits on a condition (the
server closing the socket, a follower count), never a fixed sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hostile import connect, read_until_closed, serving

DEADLINE_S = 1.0
CAP = 8
WAIT_S = 20.0  # the most any condition below is waited for


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    """(port, log file) of a `cnnviz serve` with 1 s deadlines and a cap of 8 connections."""
    deadlines = {f"http_{part}_timeout_seconds": DEADLINE_S for part in ("header", "body", "write")}
    folder = tmp_path_factory.mktemp("http")
    with serving(folder, **deadlines, max_connections=CAP, session_ping_seconds=600) as started:
        yield started[0], started[1]


def test_a_request_head_sent_too_slowly_is_cut_off(server):
    port, _log = server
    with connect(port) as silent, connect(port) as trickle:
        trickle.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # head unfinished
        started = time.monotonic()
        assert read_until_closed(silent) == b""
        assert read_until_closed(trickle) == b""
        assert time.monotonic() - started < WAIT_S


def test_a_body_sent_too_slowly_is_cut_off_without_a_server_error(server):
    port, log = server
    with connect(port) as sock:
        sock.sendall(b"POST /api/conv/trace HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     b'{"x":')  # fmt: skip
        assert read_until_closed(sock) == b""  # closed, no answer: nobody would read it
    # the next request is served, and the disconnected body left no traceback in the log
    assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    text = log.read_text(errors="replace")
    assert "Exception in ASGI application" not in text and "Traceback" not in text


def test_a_follower_that_never_reads_is_closed(server):
    port, _log = server
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        created = client.post("/api/sessions", json={"page": "/conv", "state": {}}).json()
        code, token = created["code"], created["teacher_token"]
        with connect(port, receive_buffer=4096) as follower:
            request = (f"GET /api/sessions/{code}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Accept: text/event-stream\r\n\r\n")  # fmt: skip
            follower.sendall(request.encode())
            deadline = time.monotonic() + WAIT_S
            while client.get(f"/api/sessions/{code}").json()["followers"] != 1:
                assert time.monotonic() < deadline
            # states of ~14 kB each until the server has given up on the follower: its socket
            # buffers fill, writing pauses, and the write deadline closes the connection
            state = {"filler": "x" * 14_000}
            publishes = 0
            # its own wait, long enough for a loaded machine to fill loopback buffers of a few MB
            deadline = time.monotonic() + 3 * WAIT_S
            while client.get(f"/api/sessions/{code}").json()["followers"] == 1:
                assert time.monotonic() < deadline, f"still following after {publishes} states"
                response = client.post(f"/api/sessions/{code}/state",
                                       json={"page": "/conv", "state": state},
                                       headers={"X-Teacher-Token": token})  # fmt: skip
                assert response.status_code == 200, response.text
                publishes += 1
        assert publishes > 1  # it was the full buffer that closed it, not the first state


def test_connections_over_the_cap_are_closed_at_once(server):
    port, _log = server
    held = [connect(port) for _ in range(CAP)]
    try:
        with connect(port) as over:
            over.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_until_closed(over) == b""
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + WAIT_S
    while True:  # the held ones are gone once the server has noticed their close
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline


@pytest.mark.parametrize("path", ["/api/health", "/conv", "/api/models", "/static/js/api.js",
                                  "/api/features/samples/circle.png"])  # fmt: skip
def test_head_is_answered_wherever_get_is(server, path):
    port, _log = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client:
        got, head = client.get(path), client.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert "content-security-policy" in head.headers


def test_head_of_a_stream_ends_at_its_headers(server):
    port, _log = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        code = client.post("/api/sessions", json={"page": "/conv", "state": {}}).json()["code"]
        head = client.head(f"/api/sessions/{code}/events")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")
        assert client.get(f"/api/sessions/{code}").json()["followers"] == 0


@pytest.mark.parametrize(
    ("host", "status"),
    [("evil.example", 400), ("evil.example:80", 400), ("127.0.0.1", 200), ("localhost:1", 200),
     ("[::1]:8000", 200), ("192.168.1.20:8000", 200), ("LOCALHOST.", 200)],
)  # fmt: skip
def test_only_allowed_hosts_are_served(server, host, status):
    port, _log = server
    response = httpx.get(f"http://127.0.0.1:{port}/api/health", headers={"host": host}, timeout=5)
    assert response.status_code == status
    if status == 400:
        assert response.json()["detail"][0]["loc"] == ["header", "host"]
        assert response.json()["detail"][0]["type"] == "host_not_allowed"
        assert "content-security-policy" in response.headers


def test_a_json_route_refuses_a_multipart_body_before_reading_it(server):
    port, _log = server
    with connect(port) as sock:
        # 80 MB announced, nothing sent: the answer must come from the headers alone
        sock.sendall(b"POST /api/conv/trace HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n"
                     b"Content-Length: 80000000\r\n\r\n")  # fmt: skip
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 415 ")
    assert json.loads(body)["detail"][0]["type"] == "unsupported_media_type"
