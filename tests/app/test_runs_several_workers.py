"""Several server workers on one PostgreSQL database (`cnnviz serve --workers N`).

First two run managers in this process, as two workers would be: a run started by one is
listed, streamed (with `Last-Event-ID`), paused, resumed and stopped through the other. Then a
real `cnnviz serve --workers 2`: requests land on both workers, and every one of them reads,
streams and controls a run that one of them drives. On SQLite a run stays controlled by its own
process only (the file is one host's, and `--workers N` is refused there without the override).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from event_stream import run_events
from test_class_pictures import photo
from test_runs_manager import (
    LONG,
    TIMEOUT,
    TINY,
    config,
    ended,
    events,
    kinds,
    wait_for,
)

from app.runs.history import record_events
from app.runs.manager import RunConflict, RunLimits, RunManager
from app.runs.store import open_run_store
from app.settings import ROOT


@pytest.fixture
def two_workers(postgres_url, tmp_path):
    """Two managers (two server workers) on one database; the first may train one run at a
    time, so a second run of its waits in its queue."""
    stores = [open_run_store(postgres_url, tmp_path / "unused.sqlite3") for _ in range(2)]
    managers = [RunManager(store, tmp_path / "checkpoints",
                           RunLimits(max_concurrent=1, max_queued=2, poll_seconds=0.05))
                for store in stores]  # fmt: skip
    yield managers
    for manager in managers:
        manager.close()
    for store in stores:
        store.close()


def _watch(manager: RunManager, run_id: str, after: int) -> list[tuple[int, dict]]:
    async def watch() -> list[tuple[int, dict]]:
        subscription = manager.subscribe(run_id, after)
        assert not subscription.live  # not this worker's run: followed in the database
        return [pair async for chunk in subscription.frames() for pair in run_events(chunk)]

    return asyncio.run(asyncio.wait_for(watch(), TIMEOUT))


def test_a_run_is_followed_and_controlled_through_any_worker(two_workers):
    driving, other = two_workers
    run_id = driving.create(config(driving, **LONG)).id
    queued = driving.create(config(driving, **TINY)).id
    store = other.store
    assert {r.id for r in store.list_runs(10)} == {run_id, queued}
    wait_for(store, run_id, lambda h: "step" in kinds(h))

    other.pause(run_id)  # passed on to the driving worker
    history = wait_for(store, run_id, lambda h: "paused" in kinds(h))
    assert other.get(run_id).status == "paused"
    steps = kinds(history).count("step")
    other.resume(run_id)
    history = wait_for(store, run_id, lambda h: kinds(h).count("step") > steps + 2)
    order = kinds(history)
    assert order[order.index("paused") + 1] == "resumed"  # really paused: no step in between

    # the queued run: only stopping it means anything before it has a process
    with pytest.raises(RunConflict, match="waiting for a free worker"):
        other.pause(queued)
    other.stop(queued)
    assert kinds(wait_for(store, queued, ended)) == ["status", "end"]
    assert other.get(queued).status == "stopped"

    # a viewer on the other worker from event 3 on, while the run is stopped from there
    seen = len(events(store, run_id))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        watching = pool.submit(_watch, other, run_id, 3)
        wait_for(store, run_id, lambda h: len(h) > seen + 2)  # it is following live events
        other.stop(run_id)
        received = watching.result(TIMEOUT)
    history = wait_for(store, run_id, ended)
    assert [event_id for event_id, _ in received] == list(range(4, len(history) + 1))
    assert [event for _, event in received] == history[3:]
    assert history[-1]["reason"] == "stopped" and history[-2]["final"]
    assert driving.get(run_id).status == "stopped"
    with pytest.raises(RunConflict, match="already ended"):
        other.resume(run_id)


def test_on_sqlite_a_run_is_controlled_only_by_its_own_process(tmp_path):
    stores = [open_run_store("", tmp_path / "runs.sqlite3") for _ in range(2)]
    driving, other = (RunManager(store, tmp_path / "checkpoints") for store in stores)
    try:
        stores[0].create_run("aaaaaaaaaaaa", {}, "web", driving.owner)
        record_events(stores[0], "aaaaaaaaaaaa", [{"kind": "status", "status": "running"}])
        with pytest.raises(RunConflict, match="driven by another process"):
            other.pause("aaaaaaaaaaaa")
    finally:
        for manager in (driving, other):
            manager.close()
        for store in stores:
            store.close()


# --- a real server with two workers --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, base: str) -> None:
        self.base = base
        self.marker = ""  # the process (worker) the first connection reached
        self.clients: list[httpx.Client] = []

    def connection(self) -> httpx.Client:
        """A new TCP connection (kept alive): it stays with the worker that accepted it. The
        first run on a worker waits for its training process helper (torch imported): slow
        on a busy machine."""
        self.clients.append(httpx.Client(base_url=self.base, timeout=TIMEOUT))
        return self.clients[-1]

    def close(self) -> None:
        for client in self.clients:
            client.close()

    @staticmethod
    def process(client: httpx.Client) -> str:
        answer = client.get("/api/health")
        assert answer.status_code == 200, answer.text
        return answer.json()["process"]

    def same_worker(self, client: httpx.Client) -> bool:
        return self.process(client) == self.marker

    def one_connection_each(self) -> tuple[httpx.Client, httpx.Client]:
        """A connection to the worker of the first one and one to the other worker: many
        connections opened at once, so that both workers accept some."""
        first = self.connection()
        self.marker = self.process(first)
        for _ in range(60):  # a loaded machine can let one worker take many rounds in a row
            clients = [self.connection() for _ in range(12)]
            with concurrent.futures.ThreadPoolExecutor(12) as pool:
                placed = list(pool.map(self.same_worker, clients))
            if not all(placed):
                other = clients[placed.index(False)]
                for client in clients:
                    if client is not other:
                        client.close()
                return first, other
            for client in clients:
                client.close()
        raise AssertionError("every connection reached the same worker")


BIND_TRIES = 5


def _start(command: list[str], env: dict, log, port: int) -> subprocess.Popen | None:
    """Start the server and wait for its health answer: the process, or None when another
    process took the port between `_free_port` and the workers' bind (a new port is tried)."""
    with log.open("wb") as sink:
        server = subprocess.Popen(command + ["--port", str(port)], cwd=ROOT, env=env,
                                  stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).is_success:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            output = log.read_text()
            if "address already in use" in output.lower():
                return None
            raise AssertionError(output[-3000:])
        if time.monotonic() >= deadline:
            server.terminate()
            server.wait(60)
            raise AssertionError("the server did not start within 90 s")
        time.sleep(0.2)


@pytest.fixture
def two_worker_server(postgres_url, tmp_path):
    env = {**os.environ, "CNNVIZ_DATA_DIR": str(tmp_path), "CNNVIZ_DATABASE_URL": postgres_url,
           "CNNVIZ_RUN_POLL_SECONDS": "0.1"}  # fmt: skip
    env.pop("CNNVIZ_ALLOW_SEVERAL_WORKERS", None)  # Postgres alone must be enough
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--workers",
               "2"]  # fmt: skip
    log = tmp_path / "server.log"
    for _ in range(BIND_TRIES):
        port = _free_port()
        server = _start(command, env, log, port)
        if server is not None:
            break
    else:
        raise AssertionError(f"every one of {BIND_TRIES} free ports was taken before the bind")
    try:
        served = Server(f"http://127.0.0.1:{port}")
        yield served, log
        served.close()
    finally:
        server.terminate()
        server.wait(60)


def _status(client: httpx.Client, run_id: str) -> str:
    answer = client.get(f"/api/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["status"]


def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_serve_with_two_workers_shares_runs_through_postgres(two_worker_server):
    server, log = two_worker_server
    driving, other = server.one_connection_each()
    assert "share runs through PostgreSQL" in log.read_text()

    created = driving.post("/api/runs", json={**LONG, "label": "two workers"})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    owner = {"X-Run-Token": created.json()["owner_token"]}  # controls need the creator's token
    # the other worker lists it, and reads it as the driving one does
    assert run_id in [run["id"] for run in other.get("/api/runs").json()]
    _until(lambda: other.get(f"/api/runs/{run_id}").json()["last_event_id"] > 4, "steps")

    # controls sent to the worker that does not drive the run
    assert other.post(f"/api/runs/{run_id}/pause", headers=owner).status_code == 200
    _until(lambda: _status(driving, run_id) == "paused", "the pause")
    assert _status(other, run_id) == "paused"
    assert other.post(f"/api/runs/{run_id}/resume", headers=owner).status_code == 200
    _until(lambda: _status(other, run_id) == "running", "the resume")

    # a live stream from the other worker, resumed after event 3, while the run is stopped
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        headers = {"Last-Event-ID": "3"}
        streamed = pool.submit(lambda: other.get(f"/api/runs/{run_id}/events", headers=headers,
                                                 timeout=TIMEOUT).text)  # fmt: skip
        time.sleep(0.5)
        assert other.post(f"/api/runs/{run_id}/stop", headers=owner).status_code == 200
        stream = streamed.result(TIMEOUT)
    assert stream.rstrip().endswith("event: done\r\ndata: {}")  # closed after the run's end
    resumed = run_events(stream)
    assert _status(driving, run_id) == "stopped"

    # every worker now sends the same whole history; many new connections, both workers
    histories = []
    for _ in range(8):
        with server.connection() as client:
            histories.append(run_events(client.get(f"/api/runs/{run_id}/events").text))
            assert client.get(f"/api/runs/{run_id}").json()["status"] == "stopped"
    history = histories[0]
    assert all(h == history for h in histories)
    assert [event_id for event_id, _ in history] == list(range(1, len(history) + 1))
    assert resumed == history[3:]
    ends = [event for _, event in history if event["kind"] == "end"]
    assert [e["reason"] for e in ends] == ["stopped"] and history[-1][1]["kind"] == "end"
    assert {"paused", "resumed"} <= {event["kind"] for _, event in history}
    assert other.post(f"/api/runs/{run_id}/stop").status_code == 401  # no token: not yours
    assert other.post(f"/api/runs/{run_id}/stop", headers=owner).status_code == 409  # ended


# --- a class session (follow mode and quiz) across the two workers --------------------------------


def _state_events(client: httpx.Client, code: str, last_event_id: str | None, count: int):
    """The first `count` `state` events of a follower's stream on `client`'s worker."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    found: list[dict] = []
    with client.stream("GET", f"/api/sessions/{code}/events", headers=headers) as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "state":
                found.append(json.loads(line[6:]))
                if len(found) == count:
                    return found
    return found


def test_a_class_session_its_quiz_and_its_pictures_work_on_either_worker(two_worker_server):
    server, _ = two_worker_server
    teacher, student = server.one_connection_each()
    assert not server.same_worker(student)
    created = teacher.post("/api/sessions", json={"page": "/conv", "state": {"stride": 1}})
    assert created.status_code == 201, created.text
    code, token = created.json()["code"], created.json()["teacher_token"]
    auth = {"X-Teacher-Token": token}
    # the student's worker redirects to the teacher's page and streams the teacher's events
    joined = student.get(f"/join/{code}", follow_redirects=False)
    assert joined.status_code == 303
    assert joined.headers["location"] == f"/conv?follow={code}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        following = pool.submit(_state_events, student, code, None, 3)
        _until(lambda: student.get(f"/api/sessions/{code}").json()["followers"] == 1
               and teacher.get(f"/api/sessions/{code}").json()["followers"] == 1,
               "the follower, counted on both workers")  # fmt: skip
        for stride in (2, 3):
            published = teacher.post(
                f"/api/sessions/{code}/state",
                headers=auth,
                json={"page": "/conv", "state": {"stride": stride}},
            )
            assert published.status_code == 200, published.text
        events = following.result(TIMEOUT)
    assert [(e["event_id"], e["state"]) for e in events] == [
        (1, {"stride": 1}),
        (2, {"stride": 2}),
        (3, {"stride": 3}),
    ]
    replayed = _state_events(student, code, "1", 2)  # Last-Event-ID on the other worker
    assert [e["event_id"] for e in replayed] == [2, 3]

    # the quiz: asked through the teacher's worker, answered through both
    asked = teacher.post(
        f"/api/sessions/{code}/quiz", headers=auth, json={"question": "convolution.output"}
    )
    assert asked.status_code == 201, asked.text
    quiz_id = asked.json()["quiz_id"]
    assert student.get(f"/api/sessions/{code}").json()["quiz"]["status"] == "open"
    for client, name, value in ((student, "student-aaaa", "324"), (teacher, "student-bbbb", 300),
                                (student, "student-bbbb", "320")):  # fmt: skip
        answer = client.put(
            f"/api/sessions/{code}/quiz/{quiz_id}/answers/{name}", json={"value": value}
        )
        assert answer.status_code == 200, answer.text
    tally = student.get(f"/api/sessions/{code}/quiz", headers=auth).json()["quiz"]
    assert (tally["answered"], tally["correct"]) == (2, 1)
    assert tally["spread"] == [[320, 1, 0], [324, 1, 1]]
    revealed = student.post(f"/api/sessions/{code}/quiz/{quiz_id}/reveal", headers=auth)
    assert revealed.status_code == 200, revealed.text
    (event,) = _state_events(student, code, None, 1)
    assert event["quiz"]["status"] == "revealed" and event["quiz"]["worked"]["expected"] == 324

    # the class builds a dataset together: a student's picture reaches the other worker's queue
    made = teacher.post("/api/datasets", json={"name": "pets", "classes": ["cats", "dogs"]})
    owner = auth | {"X-Dataset-Token": made.json()["owner_token"]}
    linked = teacher.put(f"/api/sessions/{code}/dataset", json={"dataset": made.json()["id"]},
                         headers=owner)  # fmt: skip
    assert linked.status_code == 200, linked.text
    dogs = linked.json()["classes"][1]["id"]
    assert student.get(f"/api/sessions/{code}/dataset").json()["dataset"] == made.json()["id"]
    mine = {"student": "student-aaaa1111"}
    sent = student.post(f"/api/sessions/{code}/pictures", files={"image": ("p.jpg", photo(3))},
                        data={"class_id": str(dogs), "name": "Mina", **mine})  # fmt: skip
    assert sent.status_code == 201, sent.text
    (waiting,) = teacher.get(f"/api/sessions/{code}/pictures/pending", headers=auth).json()
    assert (waiting["id"], waiting["name"]) == (sent.json()["id"], "Mina")
    assert teacher.get(waiting["url"]).content == student.get(waiting["url"]).content
    accepted = teacher.post(f"/api/sessions/{code}/pictures/{waiting['id']}/accept",
                            headers=owner)  # fmt: skip
    assert accepted.status_code == 200 and accepted.json()["images"] == 1, accepted.text
    outcomes = student.get(f"/api/sessions/{code}/pictures", params=mine).json()
    assert [p["status"] for p in outcomes] == ["accepted"]
    assert teacher.delete(f"/api/sessions/{code}", headers=auth).status_code == 204
    assert student.get(f"/api/sessions/{code}").status_code == 404
    assert student.get(f"/api/sessions/{code}/pictures", params=mine).json() == []
