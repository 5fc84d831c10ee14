"""`/api/sessions` over a live uvicorn (SSE needs a real stream): create, publish, snapshot,
follow with Last-Event-ID replay, follower counting on disconnect, end, errors and limits."""

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import qrcode
import uvicorn

from app.deps import settings_dep
from app.main import app
from app.sessions import HubLimits, InMemoryHub, get_hub
from app.sessions_shared import CODE_ALPHABET
from app.settings import Settings

LIMITS = HubLimits(
    max_sessions=5,
    max_followers=30,
    max_state_bytes=2048,
    idle_seconds=600.0,
    replay_events=4,
    wake_seconds=1.0,
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict]]:
    """uvicorn in a thread on a socket already bound to a free loopback port; the app's hub is
    whatever the returned holder names (each test puts a fresh one there)."""
    holder: dict[str, InMemoryHub] = {}
    app.dependency_overrides[get_hub] = lambda: holder["hub"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", holder
    server.should_exit = True
    thread.join(10)
    sock.close()
    app.dependency_overrides.pop(get_hub, None)


@pytest.fixture
def base_url(server) -> str:
    url, holder = server
    holder["hub"] = InMemoryHub(LIMITS)
    return url


@pytest.fixture
def client(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as c:
        yield c


def start(client: httpx.Client, page: str = "/conv?stride=2", state=None) -> tuple[str, str]:
    response = client.post("/api/sessions", json={"page": page, "state": state or {"stride": 2}})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["code"], body["teacher_token"]


def publish(client, code, token, step, page="/conv", state=None) -> httpx.Response:
    return client.post(
        f"/api/sessions/{code}/state",
        headers={"X-Teacher-Token": token},
        json={"page": page, "state": state or {"step": step}, "step": step},
    )


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """Parse a text/event-stream into {id, event, data} dicts (comments skipped)."""
    event: dict = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


def wait_for_followers(client, code, expected) -> int:
    deadline = time.monotonic() + 5
    while (count := client.get(f"/api/sessions/{code}").json()["followers"]) != expected:
        if time.monotonic() > deadline:
            return count
        time.sleep(0.02)
    return count


def qr_modules(svg: str) -> set[tuple[int, int]]:
    """Dark modules drawn by SvgPathImage: one `Mx,yH..V..H..z` square each."""
    return {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)H", svg)}


def test_create_returns_code_token_join_url_and_qr(client):
    response = client.post("/api/sessions", json={"page": "/conv?stride=2", "state": {"k": 3}})
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(f"[{CODE_ALPHABET}]{{6}}", body["code"])
    assert body["join_url"] == f"{client.base_url}/join/{body['code']}"
    svg = body["qr_svg"]
    assert svg.startswith("<svg") and "style=" not in svg and "<script" not in svg
    # The SVG's dark squares are exactly the QR matrix of the join URL (2-module border).
    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    reference.add_data(body["join_url"])
    matrix = reference.get_matrix()
    expected = {(x, y) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    assert qr_modules(svg) == expected
    snapshot = client.get(f"/api/sessions/{body['code']}").json()
    assert snapshot == {
        "code": body["code"],
        "page": "/conv?stride=2",
        "state": {"k": 3},
        "step": None,
        "event_id": 1,
        "followers": 0,
        "quiz": None,
    }


def test_publish_advances_event_ids_and_the_snapshot(client):
    code, token = start(client)
    assert [publish(client, code, token, s).json()["event_id"] for s in range(3)] == [2, 3, 4]
    snapshot = client.get(f"/api/sessions/{code.lower()}").json()
    assert (snapshot["event_id"], snapshot["step"], snapshot["state"]) == (4, 2, {"step": 2})


def test_a_walked_unit_path_travels_to_the_followers(client):
    """/features' `unit` is a list of records ({layer, channel, y, x} per unit walked): the
    snapshot carries it as it was sent (it was refused with a 422, so a unit the teacher
    opened never reached the class); a record nested any deeper is still refused."""
    code, token = start(client, "/features?model=lenet5")
    path = [{"layer": "features.3", "channel": 2, "y": 4, "x": 5},
            {"layer": "features.2", "channel": 0, "y": 4, "x": 5}]  # fmt: skip
    state = {"model": "lenet5", "unit": path, "why": False}
    answer = publish(client, code, token, None, "/features?unit=features.3:2:4:5", state)
    assert answer.status_code == 200, answer.text
    assert client.get(f"/api/sessions/{code}").json()["state"] == state
    deeper = {"unit": [{"layer": {"name": "features.3"}}]}
    refused = publish(client, code, token, None, "/features", deeper)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][:3] == ["body", "state", "unit"]


def test_teacher_token_is_required_and_checked(client):
    code, token = start(client)
    assert publish(client, code, token + "x", 1).status_code == 403
    assert (
        client.delete(f"/api/sessions/{code}", headers={"X-Teacher-Token": "no"}).status_code == 403
    )
    assert client.get(f"/api/sessions/{code}").json()["event_id"] == 1


OWNER_ROUTES = [("POST", "/state", {"page": "/conv"}), ("DELETE", "", None),
                ("POST", "/quiz", {"question": "conv.output-size"}), ("GET", "/quiz", None),
                ("POST", "/quiz/1/reveal", None), ("DELETE", "/quiz", None),
                ("PUT", "/picture", None)]  # fmt: skip


@pytest.mark.parametrize("method,tail,body", OWNER_ROUTES)
def test_owner_routes_without_the_teacher_token_are_401_like_runs(client, method, tail, body):
    """As a run's controls: 401 naming the header (not 422 for a missing header), after the
    404 of an unknown code; nothing changes."""
    code, _token = start(client)
    answer = client.request(method, f"/api/sessions/{code}{tail}", json=body)
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"] == "unauthorized" and "X-Teacher-Token" in answer.json()["detail"]
    assert client.request(method, f"/api/sessions/ZZZZZQ{tail}", json=body).status_code == 404
    snapshot = client.get(f"/api/sessions/{code}").json()
    assert snapshot["event_id"] == 1 and snapshot["quiz"] is None


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/sessions/ZZZZZQ"),
        ("GET", "/api/sessions/ZZZZZQ/events"),
        ("POST", "/api/sessions/ZZZZZQ/state"),
        ("DELETE", "/api/sessions/ZZZZZQ"),
    ],
)
def test_unknown_code_is_404(client, method, path):
    response = client.request(
        method,
        path,
        headers={"X-Teacher-Token": "t"},
        json={"page": "/conv"} if method == "POST" else None,
    )
    assert response.status_code == 404
    assert "ZZZZZQ" in response.json()["detail"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"page": "//evil.example/conv"}, "page"),
        ({"page": "/\\evil.example"}, "page"),
        ({"page": "https://evil.example/"}, "page"),
        ({"page": "/conv#frag"}, "page"),
        ({"page": "/api/sessions"}, "page"),
        ({"page": "/conv", "step": -1}, "step"),
        ({"page": "/conv", "step": "two"}, "step"),
        ({"page": "/conv", "state": [1, 2]}, "state"),
        ({"state": {}}, "page"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, body, field):
    code, token = start(client)
    for path, headers in (
        ("/api/sessions", {}),
        (f"/api/sessions/{code}/state", {"X-Teacher-Token": token}),
    ):
        if path == "/api/sessions" and field == "step":
            continue  # create takes no step
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"][:2] == ["body", field]


def test_oversized_state_is_413(client):
    code, token = start(client)
    big = {"kernel": "x" * 2100}  # over the 2048-byte limit, under the raw body cut-off
    response = publish(client, code, token, 1, state=big)
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body", "state"]
    huge = client.post("/api/sessions", json={"page": "/conv", "state": {"x": "y" * 200_000}})
    assert huge.status_code == 413  # cut off while reading, before any parsing
    assert client.get(f"/api/sessions/{code}").json()["event_id"] == 1


def test_session_limit_is_503(client):
    for _ in range(LIMITS.max_sessions):
        start(client)
    refused = client.post("/api/sessions", json={"page": "/conv"})
    assert refused.status_code == 503 and "sessions" in refused.json()["detail"]


def test_follower_receives_snapshots_in_order_and_is_counted(client):
    code, token = start(client)
    with client.stream("GET", f"/api/sessions/{code}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream.iter_lines())
        first = next(events)
        assert (first["id"], first["event"]) == ("1", "state")
        assert json.loads(first["data"]) == {
            "event_id": 1,
            "page": "/conv?stride=2",
            "step": None,
            "quiz": None,
            "state": {"stride": 2},
        }
        assert wait_for_followers(client, code, 1) == 1
        for step in range(3):
            publish(client, code, token, step, page=f"/conv?step={step}")
        received = [next(events) for _ in range(3)]
        assert [e["id"] for e in received] == ["2", "3", "4"]
        assert [json.loads(e["data"])["page"] for e in received] == [
            "/conv?step=0",
            "/conv?step=1",
            "/conv?step=2",
        ]
    assert wait_for_followers(client, code, 0) == 0  # the disconnect unregistered it


@pytest.mark.parametrize(
    "last_event_id,expected",
    [
        ("5", ["6", "7"]),  # replay of what was missed
        ("3", ["4", "5", "6", "7"]),  # the oldest the 4-event ring can replay
        ("2", ["7"]),  # 3 is gone: the latest snapshot alone stands for everything missed
        ("junk", ["7"]),  # unreadable: full state
    ],
)
def test_last_event_id_replays_or_sends_the_full_state(client, last_event_id, expected):
    code, token = start(client)
    for step in range(6):
        publish(client, code, token, step)  # events 2..7; the ring keeps 4..7
    with client.stream(
        "GET", f"/api/sessions/{code}/events", headers={"Last-Event-ID": last_event_id}
    ) as stream:
        events = sse_events(stream.iter_lines())
        assert [next(events)["id"] for _ in expected] == expected
        publish(client, code, token, 99)
        assert next(events)["id"] == "8"


def test_idle_stream_gets_keep_alive_pings(client):
    code, _ = start(client)
    app.dependency_overrides[settings_dep] = lambda: Settings(session_ping_seconds=0.1)
    try:
        with client.stream("GET", f"/api/sessions/{code}/events") as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("retry:")) == "retry: 2000"
            assert next(line for line in lines if line.startswith(": ping"))
    finally:
        app.dependency_overrides.pop(settings_dep, None)


def test_teacher_ends_the_session_and_followers_get_end(client):
    code, token = start(client)
    with client.stream("GET", f"/api/sessions/{code}/events") as stream:
        events = sse_events(stream.iter_lines())
        assert next(events)["id"] == "1"
        assert (
            client.delete(f"/api/sessions/{code}", headers={"X-Teacher-Token": token}).status_code
            == 204
        )
        assert next(events)["event"] == "end"
        assert list(events) == []  # the server closed the stream
    assert client.get(f"/api/sessions/{code}/events").status_code == 404


def test_many_concurrent_followers_and_the_follower_limit(base_url, client):
    code, token = start(client)

    async def follow(http: httpx.AsyncClient, ready: asyncio.Event, counter: list[int]):
        async with http.stream("GET", f"/api/sessions/{code}/events") as stream:
            ids = []
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    ids.append(int(line[3:]))
                    counter[0] += 1
                    if counter[0] == LIMITS.max_followers:
                        ready.set()
                    if len(ids) == 3:
                        break
            return ids

    async def scenario():
        ready, counter = asyncio.Event(), [0]
        limits = httpx.Limits(max_connections=LIMITS.max_followers + 5)
        async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:
            tasks = [
                asyncio.create_task(follow(http, ready, counter))
                for _ in range(LIMITS.max_followers)
            ]
            await asyncio.wait_for(ready.wait(), 10)  # all connected (each got event 1)
            over = await http.get(f"/api/sessions/{code}/events")
            for step in range(2):
                await http.post(
                    f"/api/sessions/{code}/state",
                    headers={"X-Teacher-Token": token},
                    json={"page": "/conv", "step": step},
                )
            return over, await asyncio.gather(*tasks)

    over, results = asyncio.run(scenario())
    assert over.status_code == 503 and "followers" in over.json()["detail"]
    assert results == [[1, 2, 3]] * LIMITS.max_followers
    assert wait_for_followers(client, code, 0) == 0


def test_join_redirects_to_the_teachers_page_in_follow_mode(client):
    code, token = start(client, page="/conv?kernel=5&stride=2&follow=OLD")
    response = client.get(f"/join/{code.lower()}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/conv?kernel=5&stride=2&follow={code}"
    publish(client, code, token, 3, page="/pool")  # the teacher moved on: so does the link
    assert client.get(f"/join/{code}", follow_redirects=False).headers["location"] == (
        f"/pool?follow={code}"
    )


def test_join_form_and_unknown_code(client):
    form = client.get("/join", params={"lang": "en"})
    assert form.status_code == 200 and 'action="/join"' in form.text
    typed = client.get("/join", params={"code": " k7px3m "}, follow_redirects=False)
    assert typed.status_code == 303 and typed.headers["location"].endswith("/join/k7px3m")
    unknown = client.get("/join/<b>Q2", params={"lang": "en"})
    assert unknown.status_code == 404
    assert "No class has the code &lt;b&gt;Q2" in unknown.text and "<b>Q2" not in unknown.text


# --- per-client quotas (app/quotas.py) -------------------------------------------------------


@pytest.fixture
def quotas():
    """Set small per-client quotas for one test: `quotas(**settings)`."""

    def use(**values) -> None:
        settings = Settings(**values)
        app.dependency_overrides[settings_dep] = lambda: settings

    yield use
    app.dependency_overrides.pop(settings_dep, None)


def test_opening_sessions_is_limited_per_client_over_time(client, quotas):
    quotas(client_sessions_per_hour=2)
    start(client)
    start(client)
    refused = client.post("/api/sessions", json={"page": "/conv"})
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.json()["detail"][0]["ctx"]["limit"] == 2


def test_guessing_session_codes_is_throttled(client, quotas):
    quotas(client_wrong_codes_per_minute=3)
    code, _ = start(client)
    for guess in ("AAAAAA", "BBBBBB", "CCCCCC"):
        assert client.get(f"/api/sessions/{guess}").status_code == 404
    # Now even the right code waits: a guesser learns nothing more until the window passes.
    blocked = client.get(f"/api/sessions/{code}")
    assert blocked.status_code == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60
    assert client.get(f"/api/sessions/{code}/events").status_code == 429
    assert client.get(f"/join/{code}").status_code == 429
    assert blocked.json()["detail"][0]["type"] == "too_many_requests"


def test_the_join_page_counts_wrong_codes_too(client, quotas):
    quotas(client_wrong_codes_per_minute=2)
    for guess in ("DDDDDD", "EEEEEE"):
        assert client.get(f"/join/{guess}").status_code == 404
    assert client.get("/api/sessions/FFFFFF").status_code == 429


def test_one_client_holds_at_most_its_follower_slots(base_url, client, quotas):
    quotas(client_follower_slots=2, session_ping_seconds=0.1)
    code, _ = start(client)
    one, two = (httpx.Client(base_url=base_url, timeout=5) for _ in range(2))
    url = f"/api/sessions/{code}/events"
    with one, two, one.stream("GET", url) as first, two.stream("GET", url) as second:
        assert first.status_code == second.status_code == 200
        refused = client.get(url)
        assert refused.status_code == 429 and "2 connections" in refused.text
    # Both streams closed: their slots come back (when the server notices the disconnect).
    deadline = time.monotonic() + 10
    while True:
        with client.stream("GET", f"/api/sessions/{code}/events") as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "the follower slots never came back"
        time.sleep(0.05)


def test_follow_connections_are_limited_per_minute(client, quotas):
    quotas(client_follows_per_minute=2, session_ping_seconds=0.1)
    code, _ = start(client)
    for _ in range(2):
        with client.stream("GET", f"/api/sessions/{code}/events") as stream:
            assert stream.status_code == 200
    assert client.get(f"/api/sessions/{code}/events").status_code == 429
