"""Request limits (413 JSON, 429 + Retry-After), security headers and CORS, on the real app."""

import asyncio
import json
import threading

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uploads import declared_upload

from app import limits
from app.limits import BodyLimitMiddleware, ClientConcurrencyLimit
from app.main import app, create_app
from app.settings import ROOT, Settings, get_settings

client = TestClient(app)
SETTINGS = get_settings()

# Every endpoint that holds a CPU for seconds, and must therefore refuse a client's extra copies.
HEAVY = [
    ("POST", "/api/features"),
    ("POST", "/api/receptive-field/effective"),
    ("POST", "/api/receptive-field/sweep"),
    ("POST", "/api/runs"),
]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body"]
    assert "bytes" in detail[0]["msg"]


# --- body limit -------------------------------------------------------------------------------


def test_declared_json_body_over_the_limit_is_refused_before_reading():
    body = b"[" + b"0," * (SETTINGS.max_body_bytes // 2) + b"0]"
    response = client.post(
        "/api/conv/shape", content=body, headers={"content-type": "application/json"}
    )
    assert_too_large(response)
    assert "content-security-policy" in response.headers  # the refusal is a normal response


def test_chunked_json_body_is_cut_off_at_the_limit():
    chunk = b" " * 100_000
    chunks = SETTINGS.max_body_bytes // len(chunk) + 2

    def stream():
        yield from (chunk for _ in range(chunks))

    response = client.post(
        "/api/conv/shape", content=stream(), headers={"content-type": "application/json"}
    )
    assert response.request.headers.get("content-length") is None  # really sent chunked
    assert_too_large(response)


def test_body_under_the_limit_passes():
    response = client.post(
        "/api/conv/shape",
        json={"channels": 1, "height": 5, "width": 5, "kernel_size": 3},
    )
    assert response.status_code == 200, response.text


def test_multipart_gets_the_upload_limit_not_the_json_one():
    junk = b"\0" * (SETTINGS.max_body_bytes + 1000)  # too big as JSON, fine as an upload
    response = client.post(
        "/api/features", files={"image": ("x.png", junk, "image/png")}, data={"model": "lenet5"}
    )
    assert response.status_code == 422, response.text  # the route read it and named the field
    assert response.json()["detail"][0]["loc"][:2] == ["body", "image"]


def test_multipart_over_the_upload_limit_is_refused():
    response = declared_upload(client, SETTINGS.max_multipart_bytes + 1)
    assert_too_large(response)


async def _echo_length(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


def test_bare_asgi_app_also_gets_json_413():
    """Without FastAPI's exception handlers the middleware itself writes the JSON answer."""
    bare = BodyLimitMiddleware(
        Starlette(routes=[Route("/echo", _echo_length, methods=["POST"])]),
        max_body_bytes=1000,
        max_multipart_bytes=5000,
    )
    with TestClient(bare) as bare_client:
        assert bare_client.post("/echo", content=b"x" * 1000).json() == {"length": 1000}
        assert_too_large(bare_client.post("/echo", content=iter([b"x" * 600, b"x" * 600])))
        multipart = {"content-type": "multipart/form-data; boundary=b"}
        ok = bare_client.post("/echo", content=iter([b"x" * 3000]), headers=multipart)
        assert ok.json() == {"length": 3000}
        assert_too_large(bare_client.post("/echo", content=b"x" * 5001, headers=multipart))


# --- per-client concurrency -------------------------------------------------------------------


def _gated_app(limit: ClientConcurrencyLimit) -> tuple[FastAPI, asyncio.Event]:
    gate = asyncio.Event()
    tiny = FastAPI()

    @tiny.post("/work", dependencies=[Depends(limit)])
    async def work() -> dict[str, bool]:
        await gate.wait()
        return {"done": True}

    return tiny, gate


async def _concurrent_requests() -> None:
    limit = ClientConcurrencyLimit("work", limit=2, retry_after=7)
    tiny, gate = _gated_app(limit)
    transport = httpx.ASGITransport(app=tiny, client=("10.0.0.1", 5000))
    other = httpx.ASGITransport(app=tiny, client=("10.0.0.2", 5000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as student,
        httpx.AsyncClient(transport=other, base_url="http://t") as neighbour,
    ):
        first = [asyncio.create_task(student.post("/work")) for _ in range(2)]
        while limit.active["10.0.0.1"] < 2:
            await asyncio.sleep(0.001)
        refused = await student.post("/work")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "7"
        assert refused.json()["detail"][0]["loc"] == ["client"]
        # Another address is not held back by this one's slots.
        third = asyncio.create_task(neighbour.post("/work"))
        while limit.active["10.0.0.2"] < 1:
            await asyncio.sleep(0.001)
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*first, third)] == [200] * 3
        assert not limit.active  # every slot given back
        assert (await student.post("/work")).status_code == 200


def test_client_gets_429_with_retry_after_beyond_its_slots():
    asyncio.run(_concurrent_requests())


def test_slot_is_given_back_when_the_request_fails():
    limit = ClientConcurrencyLimit("work", limit=1, retry_after=1)
    tiny = FastAPI()

    @tiny.post("/fail", dependencies=[Depends(limit)])
    async def fail() -> None:
        raise ValueError("boom")

    with TestClient(tiny, raise_server_exceptions=False) as tiny_client:
        assert tiny_client.post("/fail").status_code == 500
        assert tiny_client.post("/fail").status_code == 500  # not 429: the slot came back
    assert not limit.active


async def _left_while_waiting(path: str, started: threading.Event) -> tuple[list[dict], list[int]]:
    """POST `path` (a sample's effective field through LeNet-5) straight into the app, whose
    forward slots the test holds; the client leaves once its request holds its heavy slot and
    its work has `started` in a worker thread (waiting there for a forward slot).
    Returns what the app sent and the client's slots in use after the request ended."""
    built = httpx.Request("POST", "http://testserver" + path,
                          data={"model": "lenet5", "sample": "digit"})  # fmt: skip
    body = built.read()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    left = asyncio.Event()

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(k.lower().encode(), v.encode())
                                          for k, v in built.headers.items()],
             "client": ("10.9.8.7", 5000), "server": ("testserver", 80)}  # fmt: skip
    limit = limits.heavy_work("receptive_field")
    request = asyncio.create_task(app(scope, receive, send))
    while limit.active["10.9.8.7"] < 1 or not started.is_set():  # waiting for a forward slot
        assert not request.done(), sent  # (a refusal would end it before any work)
        await asyncio.sleep(0.001)
    left.set()
    await asyncio.wait_for(request, 60)  # ended without its forward pass
    return sent, [limit.active.get("10.9.8.7", 0)]


def test_a_client_that_leaves_frees_its_heavy_slot_at_once(monkeypatch):
    """A page left (a lesson switched) must not keep its client's slot until the work it asked
    for ends: the request ends when the client disconnects, and the work it waited to start
    is skipped (nothing is computed for nobody)."""
    from uploads import own_feature_cache

    import app.routes.receptive_field as routes

    computed: list[str] = []
    started = threading.Event()  # the worker thread's call began (it waits for a slot)
    ended = threading.Event()  # the worker thread's call returned
    real, on_picture = routes.picture_effective_field, routes._on_picture

    def watched(*args, **kwargs):
        started.set()
        try:
            return on_picture(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(routes, "picture_effective_field",
                        lambda *a, **k: computed.append("erf") or real(*a, **k))  # fmt: skip
    monkeypatch.setattr(routes, "_on_picture", watched)
    with own_feature_cache(app) as cache:
        held = 0
        while cache.forward_slots.acquire(blocking=False):
            held += 1
        try:
            sent, active = asyncio.run(
                _left_while_waiting("/api/receptive-field/effective", started)
            )
        finally:
            for _ in range(held):
                cache.forward_slots.release()
        assert active == [0]  # the slot came back while the work still waited
        assert ended.wait(60)  # the worker thread, let in now, sees its client gone
    assert computed == []
    assert all(m.get("status", 0) < 500 for m in sent)


def test_a_finished_heavy_request_tells_the_heap_trimmer(monkeypatch):
    """Each heavy request that ends tells the process's trimmer (which decides when to trim)."""
    asked: list[float] = []
    monkeypatch.setattr(limits, "_trimmer", lambda every: lambda: asked.append(every))
    limit = ClientConcurrencyLimit("work", limit=1, retry_after=1)
    tiny = FastAPI()

    @tiny.post("/work", dependencies=[Depends(limit)])
    def work() -> dict[str, bool]:
        return {"done": True}

    with TestClient(tiny) as tiny_client:
        for _ in range(3):
            assert tiny_client.post("/work").status_code == 200
    assert asked == [get_settings().malloc_trim_seconds] * 3
    monkeypatch.setattr(get_settings(), "malloc_trim_seconds", 0.0)  # 0: never
    with TestClient(tiny) as tiny_client:
        assert tiny_client.post("/work").status_code == 200
    assert len(asked) == 3


def _routes(routes):
    """Every route, through included routers (FastAPI keeps those as nested branches)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _routes(inner.routes) if inner is not None else (route,)


def _route_limit(method: str, path: str) -> ClientConcurrencyLimit | None:
    for route in _routes(app.routes):
        if getattr(route, "path", None) == path and method in getattr(route, "methods", ()):
            limits = [d.call for d in route.dependant.dependencies]
            found = [c for c in limits if isinstance(c, ClientConcurrencyLimit)]
            assert found, f"{method} {path} has no per-client concurrency limit"
            return found[0]
    return None


def _limited_routes() -> list[tuple[str, str]]:
    """Every (method, path) that carries a per-client limit, the required ones first."""
    found = [
        (method, route.path)
        for route in _routes(app.routes)
        if hasattr(route, "dependant")
        and any(isinstance(d.call, ClientConcurrencyLimit) for d in route.dependant.dependencies)
        for method in sorted(route.methods)
    ]
    return HEAVY + sorted(set(found) - set(HEAVY))


@pytest.mark.parametrize(("method", "path"), _limited_routes())
def test_heavy_endpoint_refuses_a_client_over_its_slots(method, path):
    limit = _route_limit(method, path)
    assert limit is not None, f"{method} {path} is gone; update HEAVY"
    limit.active["testclient"] = SETTINGS.client_heavy_requests
    try:
        response = client.request(method, path, json={})
    finally:
        del limit.active["testclient"]
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) == SETTINGS.retry_after_seconds


# --- security headers and CORS ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/conv", "/api/health", "/api/models", "/static/js/conv.js", "/api/no-such-thing"]
)
def test_security_headers_on_pages_api_static_and_errors(path):
    response = client.get(path)
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "http:" not in csp and "https:" not in csp and "*" not in csp  # no outside origins
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


PREFLIGHT = {
    "origin": "https://school.example",
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type",
}


def test_cors_is_closed_by_default():
    assert SETTINGS.cors_origins == []
    preflight = client.options("/api/conv/shape", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/api/health", headers={"origin": "https://school.example"})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


def test_cors_opens_to_configured_origins_only():
    open_client = TestClient(create_app(Settings(cors_origins=["https://school.example"])))
    preflight = open_client.options("/api/conv/shape", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://school.example"
    simple = open_client.get("/api/health", headers={"origin": "https://school.example"})
    assert simple.headers["access-control-allow-origin"] == "https://school.example"
    assert "retry-after" in simple.headers["access-control-expose-headers"].lower()
    stranger = open_client.get("/api/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    refused = open_client.options(
        "/api/conv/shape", headers={**PREFLIGHT, "origin": "https://evil.example"}
    )
    assert refused.status_code == 400


def test_cors_origins_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        "CNNVIZ_CORS_ORIGINS", json.dumps(["https://a.example", "https://b.example"])
    )
    monkeypatch.setenv("CNNVIZ_MAX_BODY_BYTES", "1234")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.max_body_bytes == 1234


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`CNNVIZ_{name.upper()}`" not in readme]
    assert missing == [], f"add these to README's settings tables: {missing}"
