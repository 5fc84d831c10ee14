"""The hostile-use suite (issue 17, part 9): every category of hostile or careless use sent to a
real `cnnviz serve` on loopback: pictures, archives, malformed JSON, slow clients, and the
runs database failing. Every answer is a 4xx (slow clients: the connection closed), never a
5xx, but for the deliberate storage faults, which are 503s; the server lives through all of it
and its log holds no traceback. Figures per category: benchmarks/hostile_use.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hostile import archives, json_bodies, pictures, serving, slow_clients
from test_upload_corpus import HOSTILE_ARCHIVES, REFUSED

DEADLINE_S = 1.0
CLIENT_TIMEOUT_S = 120  # a busy 2-core machine (a full test run) can take tens of seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    with serving(folder, http_header_timeout_seconds=DEADLINE_S,
                 http_body_timeout_seconds=DEADLINE_S) as (port, log, _process):  # fmt: skip
        yield port, log


def send_all(port: int, requests: dict) -> dict[str, int]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S) as client:
        return {name: send(client) for name, send in requests.items()}


def assert_refused_and_alive(port: int, log: Path, answers: dict[str, int], allowed) -> None:
    wrong = {name: status for name, status in answers.items() if status not in allowed}
    assert wrong == {}, f"{Counter(answers.values())}: {wrong}"
    assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).status_code == 200
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Exception in ASGI application" not in text


CLIENT_ERRORS = range(400, 500)


def test_hostile_pictures_are_4xx(server):
    port, log = server
    corpus = {name: data for name, (data, _words) in REFUSED.items()}
    answers = send_all(port, pictures(corpus))
    assert len(answers) == 2 * (4 + len(REFUSED))
    assert_refused_and_alive(port, log, answers, CLIENT_ERRORS)


def test_hostile_archives_are_4xx(server):
    port, log = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S) as client:
        made = client.post("/api/datasets", json={"name": "hostile", "classes": ["a", "b"]})
        assert made.status_code == 201, made.text
        dataset_id, token = made.json()["id"], made.json()["owner_token"]
    # (a dataset may take one class at once: "one class only" is no refusal there)
    corpus = {name: data for name, (data, _words) in HOSTILE_ARCHIVES.items()
              if name != "one class only"}  # fmt: skip
    answers = send_all(port, archives(dataset_id, token, corpus))
    assert_refused_and_alive(port, log, answers, CLIENT_ERRORS)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S) as client:
        assert client.get(f"/api/datasets/{dataset_id}").json()["images"] == 0


# Bodies no route can read; the others may be read by a route whose every field has a default
# and which ignores unknown ones (the receptive-field sweep): 200 there is right, 5xx never.
UNREADABLE = ("truncated", "deeply nested", "not an object", "empty", "binary", "text/plain")


def test_malformed_json_is_never_a_server_error(server):
    port, log = server
    answers = send_all(port, json_bodies())
    assert_refused_and_alive(port, log, answers, range(200, 500))
    unreadable = {name: status for name, status in answers.items() if name.startswith(UNREADABLE)}
    assert len(unreadable) == 6 * 7
    assert_refused_and_alive(port, log, unreadable, CLIENT_ERRORS)


def test_slow_clients_are_closed(server):
    port, log = server
    answers = send_all(port, slow_clients(port))
    assert_refused_and_alive(port, log, answers, {0})


def test_storage_faults_are_503_and_the_server_lives(tmp_path):
    with serving(tmp_path) as (port, log, process):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/api/runs").status_code == 200
            for path in tmp_path.glob("cnnviz.sqlite3*"):
                path.unlink()
            answers = {"list": client.get("/api/runs").status_code,
                       "create": client.post("/api/runs", json={"model": "mlp"}).status_code,
                       "one": client.get("/api/runs/r0000000000000000").status_code}  # fmt: skip
            assert set(answers.values()) <= {503, 422}, answers
            assert answers["list"] == 503
            assert client.get("/api/health").status_code == 200
            assert client.get("/conv").status_code == 200
        assert process.poll() is None
        assert list(tmp_path.glob("cnnviz.sqlite3*")) == []  # nothing re-created
        assert "runs database unavailable" in log.read_text(errors="replace")
