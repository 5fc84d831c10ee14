"""A failed request lets go of its memory at once, and an unexpected error is still a JSON 500
with the security headers.

Before: a traceback's frames kept a failed request's arrays (303 MB for one picture) alive
until the garbage collector broke the cycle exception → traceback → frame; and Starlette's
ServerErrorMiddleware answered a 500 outside SecurityHeadersMiddleware, in plain text.
"""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest
from fastapi.concurrency import run_in_threadpool
from fastapi.testclient import TestClient

from app.errors import release_frames
from app.main import create_app
from app.security import HEADERS
from cnncore.errors import CNNCoreError

BIG = 20_000_000  # bytes each failing request allocates
held: list[weakref.ref] = []


class Pixels:
    """A request's big array, weakly referenceable so a test can see when it is freed."""

    def __init__(self):
        self.values = np.ones(BIG // 8)


def fail(kind: str) -> None:
    pixels = Pixels()
    held.append(weakref.ref(pixels))
    if kind == "refused":
        raise CNNCoreError("refused", "image", code="image_empty")
    if kind == "chained":
        try:
            raise OSError("inner")
        except OSError as exc:
            raise CNNCoreError("damaged", "image", code="image_truncated") from exc
    raise MemoryError("out of memory while resizing")


@pytest.fixture(scope="module")
def client():
    application = create_app()

    @application.post("/test/threaded/{kind}")
    async def threaded(kind: str):
        return await run_in_threadpool(fail, kind)

    @application.post("/test/plain/{kind}")
    def plain(kind: str):
        return fail(kind)

    warm = TestClient(application, raise_server_exceptions=False)
    for route in ("threaded", "plain"):  # first requests allocate caches once: not measured
        for kind in ("refused", "chained", "crash"):
            warm.post(f"/test/{route}/{kind}")
    return warm


@pytest.fixture
def no_collector():
    """Without the cycle collector, only reference counting can free the request's memory."""
    gc.collect()
    gc.disable()
    held.clear()
    yield
    gc.enable()
    gc.collect()


@pytest.mark.parametrize("route", ["threaded", "plain"])
@pytest.mark.parametrize(("kind", "status"), [("refused", 422), ("chained", 422), ("crash", 500)])
def test_the_memory_of_a_failed_request_is_freed_without_the_collector(
    client, no_collector, route, kind, status
):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        response = client.post(f"/test/{route}/{kind}")
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == status
    assert peak - before >= BIG  # the request did hold its array
    assert len(held) == 1 and held[0]() is None
    assert after - before < BIG // 10  # what stays is not the request's 20 MB


def test_an_unexpected_error_is_a_json_500_with_the_security_headers(client):
    response = client.post("/test/threaded/crash")
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal server error (logged on the server)",
        "type": "internal_error",
    }
    for name, value in HEADERS:
        assert response.headers[name.decode()] == value.decode()
    assert "out of memory" not in response.text


def test_release_frames_clears_causes_and_contexts_and_keeps_line_numbers():
    def inner():
        pixels = Pixels()  # noqa: F841 - held by the frame until cleared
        raise OSError("inner")

    def outer():
        try:
            inner()
        except OSError as exc:
            raise CNNCoreError("outer") from exc

    with pytest.raises(CNNCoreError) as info:
        outer()
    error = info.value
    frames = []
    for exc in (error, error.__cause__):
        tb = exc.__traceback__
        while tb is not None:
            frames.append((tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
    inner_frame = next(frame for frame, _ in frames if frame.f_code is inner.__code__)
    assert "pixels" in inner_frame.f_locals
    release_frames(error)
    assert "pixels" not in inner_frame.f_locals
    assert all(line > 0 for _, line in frames)
