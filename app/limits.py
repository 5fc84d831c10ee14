"""Request limits every route gets: a body-size cap (413) and per-client slots for heavy work (429).

`BodyLimitMiddleware` is pure ASGI (like `SecurityHeadersMiddleware`) so SSE streams pass
untouched. Starlette's own `RequestBodyLimitMiddleware` answers `text/plain` "Content Too Large";
ours answers FastAPI's JSON error shape, `{"detail": [{"loc": ["body"], "msg": ...}]}`, like every
other refusal of this API. A declared `Content-Length` over the limit is refused before a byte is
read; a body without one (chunked) is counted as it arrives and cut off at the limit. A
multipart body to a route that takes none (`upload_paths`: the routes whose OpenAPI body lists
`multipart/form-data`) is refused at once (415), so a JSON route never reads 80 MB of a form.

`ClientConcurrencyLimit` is a FastAPI dependency for endpoints that hold a CPU for seconds
(feature maps, effective receptive fields, starting runs): one client address may have at most
`client_heavy_requests` of them in flight per group; the next gets 429 with `Retry-After`
(RFC 9110 §10.2.3), so one busy tab cannot starve a classroom. The count lives in this process:
with several workers each worker counts on its own (README, "Several workers"). When a heavy
request ends, the process's heap trimmer hears of it (`app.memory.HeapTrimmer`, in a worker
thread): the free pages go back to the system once heavy work pauses for `malloc_trim_seconds`,
and while it goes on at most that often.

`unless_client_leaves` runs a heavy route's work in a worker thread and ends the request as soon
as its client disconnects (a page left: a lesson switched, a tab closed), so the client's slot is
free for the page it opened next instead of answering it 429 for a result nobody will read. The
thread cannot be stopped mid-pass; it is told (`gone`) and skips what it has not started. What it
still holds is bounded server-wide (`feature_concurrency` forward slots) and by the per-minute
quota each request was charged.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from functools import lru_cache
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.deps import settings_dep
from app.json_guard import RouteBodies
from app.memory import HeapTrimmer
from app.settings import Settings

__all__ = ["BodyLimitMiddleware", "ClientConcurrencyLimit", "client_address", "heavy_work",
           "live_work", "unless_client_leaves", "upload_paths"]  # fmt: skip

T = TypeVar("T")


def _too_large_detail(limit: int) -> list[dict[str, object]]:
    return [
        {
            "loc": ["body"],
            "msg": f"the request body is over the {limit:,} bytes this server accepts",
            "type": "too_large",
            "ctx": {"limit": limit},
        }
    ]


class _BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body, after the 413 went out, to stop the app reading on.

    An HTTPException so FastAPI's body reader re-raises it (anything else it turns into a 400);
    its detail is a plain string so any handler can render it, though that reply is dropped."""

    def __init__(self, limit: int):
        super().__init__(413, detail=_too_large_detail(limit)[0]["msg"])


class BodyLimitMiddleware:
    """Refuse request bodies over `max_body_bytes` (multipart uploads: `max_multipart_bytes`).

    Uploads get the larger limit because a picture or a dataset zip is big by nature; each upload
    route still checks its own, smaller limit per file. Every other body (JSON) gets the small one,
    or with `route_bodies` the limit of its route's class (`app.json_guard`).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_multipart_bytes: int,
        upload_paths: Sequence[re.Pattern[str]] | None = None,
        route_bodies: RouteBodies | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_multipart_bytes = max_multipart_bytes
        self.upload_paths = upload_paths  # None: every route may take a multipart body
        self.route_bodies = route_bodies  # None: every other body gets `max_body_bytes`

    def _close(self, headers: Headers) -> bool:
        """Close rather than drain a refused body: when it is over the largest JSON body
        (`max_body_bytes`) or of unknown length. A smaller one is read and dropped, so that the
        client, still sending, reads its 4xx instead of a reset connection."""
        declared = headers.get("content-length", "")
        return not declared.isdigit() or int(declared) > self.max_body_bytes

    def limit_for(self, headers: Headers, scope: Scope | None = None) -> int:
        content_type = headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            return self.max_multipart_bytes
        if self.route_bodies is not None and scope is not None:
            return self.route_bodies.limit(scope)  # the route's class (app/json_guard.py)
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_for(headers, scope)
        if (
            limit == self.max_multipart_bytes
            and self.upload_paths is not None
            and not any(path.match(scope["path"]) for path in self.upload_paths)
        ):
            await _send_json(send, 415, _not_a_form_detail(), self._close(headers))
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_too_large(send, limit, self._close(headers))
            return

        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        # Answer now, in our shape, whatever the app's handlers would write.
                        refused = True
                        await _send_too_large(send, limit, close=True)
                    raise _BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:  # the app's own answer to the cut-off, after ours went out
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if not refused:  # the app had begun its reply: nothing sensible left to send
                raise


def _not_a_form_detail() -> list[dict[str, object]]:
    return [
        {
            "loc": ["header", "content-type"],
            "msg": "this route takes no multipart form: send JSON",
            "type": "unsupported_media_type",
        }
    ]


def upload_paths(routers: Sequence[APIRouter]) -> list[re.Pattern[str]]:
    """The path patterns of the routes whose OpenAPI body lists `multipart/form-data`."""
    found = []
    for router in routers:
        for route in router.routes:
            extra = getattr(route, "openapi_extra", None) or {}
            if "multipart/form-data" in extra.get("requestBody", {}).get("content", {}):
                found.append(route.path_regex)
    return found


async def _send_too_large(send: Send, limit: int, close: bool) -> None:
    await _send_json(send, 413, _too_large_detail(limit), close)


async def _send_json(
    send: Send, status: int, detail: list[dict[str, object]], close: bool = True
) -> None:
    """The refusal; with `close`, the connection is closed after it (the rest of the body
    unread). Without, uvicorn reads and drops the rest, and the connection carries on: a client
    still sending when the server closes gets a reset, often instead of the answer."""
    end = [(b"connection", b"close")] if close else []
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *end,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def client_address(request: Request) -> str:
    """The peer's address. Behind a reverse proxy uvicorn puts the real client here when the
    proxy is trusted (`--forwarded-allow-ips`, default 127.0.0.1), so students stay distinct."""
    return request.client.host if request.client else "unknown"


class ClientConcurrencyLimit:
    """At most `limit` requests of this group in flight per client address; else 429.

    Use as a route dependency: `dependencies=[Depends(heavy_work("features"))]`. `limit` and
    `retry_after` default to the settings `client_heavy_requests` and `retry_after_seconds`,
    read per request from the app's settings (`settings_dep`, which tests override).
    """

    def __init__(
        self,
        group: str,
        limit: int | None = None,
        retry_after: int | None = None,
        quota: str = "heavy",
        limit_setting: str = "client_heavy_requests",
    ):
        self.group = group
        self.limit = limit
        self.quota = quota  # the per-minute quota of app/quotas.py each request is charged to
        self.limit_setting = limit_setting
        self.retry_after = retry_after
        # Touched only on the event loop (async dependency), so a plain Counter needs no lock.
        self.active: Counter[str] = Counter()

    async def __call__(
        self, request: Request, settings: Annotated[Settings, Depends(settings_dep)]
    ) -> AsyncIterator[None]:
        limit = getattr(settings, self.limit_setting) if self.limit is None else self.limit
        retry_after = settings.retry_after_seconds if self.retry_after is None else self.retry_after
        client = client_address(request)
        if self.group != "runs":  # runs have their own quota (app/quotas.py), charged on start
            from app.quotas import charge  # app.quotas builds on this module

            charge(self.quota, client, settings)
        if self.active[client] >= limit:
            raise HTTPException(
                429,
                detail=[
                    {
                        "loc": ["client"],
                        "msg": f"you already have {limit} {self.group} request(s) running; "
                        f"try again in {retry_after} s",
                        "type": "too_many_requests",
                        "ctx": {"retry_after": retry_after},
                    }
                ],
                headers={"Retry-After": str(retry_after)},
            )
        self.active[client] += 1
        try:
            yield
        finally:
            self.active[client] -= 1
            if self.active[client] <= 0:
                del self.active[client]
            if settings.malloc_trim_seconds > 0:  # not awaited: a trim holds up no request
                asyncio.get_running_loop().run_in_executor(
                    None, _trimmer(settings.malloc_trim_seconds)
                )


@lru_cache(maxsize=4)
def _trimmer(every: float) -> HeapTrimmer:
    """The one trimmer of this process (per setting value, so a test can change it)."""
    return HeapTrimmer(every)


_LIMITS: dict[str, ClientConcurrencyLimit] = {}


def heavy_work(group: str) -> ClientConcurrencyLimit:
    """The one limiter of `group` (one per group, so the routes of a group share the count)."""
    if group not in _LIMITS:
        _LIMITS[group] = ClientConcurrencyLimit(group)
    return _LIMITS[group]


def live_work() -> ClientConcurrencyLimit:
    """The limiter of live predictions (many small requests a second from one page): their own
    slots (`client_live_requests`) and per-minute quota (`client_live_per_minute`), so a webcam
    streaming into a trained network neither uses up nor is refused by the heavy requests'."""
    if "live" not in _LIMITS:
        _LIMITS["live"] = ClientConcurrencyLimit("live", quota="live",
                                                 limit_setting="client_live_requests")  # fmt: skip
    return _LIMITS["live"]


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (call once the body is read: the server's next message
    is then `http.disconnect`, when the client leaves or once the answer is sent)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Callable[[threading.Event], T]) -> T:
    """`work(gone)` in a worker thread, awaited while the client stays; if it leaves first,
    `gone` is set and `ClientDisconnect` ends the request (its slot is released now; nobody
    reads the answer). `work` checks `gone` before starting what it may skip."""
    gone = threading.Event()
    task = asyncio.ensure_future(run_in_threadpool(work, gone))
    left = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if not task.done():
        gone.set()
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
        raise ClientDisconnect
    return task.result()
