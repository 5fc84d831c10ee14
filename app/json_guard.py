"""JSON bodies bounded before they are parsed: a byte limit per route class, then the body's
nesting depth, its values and its longest string, counted on the raw bytes as they arrive.

`json.loads` and pydantic hold several Python objects per byte of a JSON body (a number costs
~32 bytes as a float in a list, a string is copied twice), so `max_body_bytes` alone let 4 MB
of nesting or one 3 MB string cost hundreds of megabytes across a few concurrent requests
(docs/PERFORMANCE.md, "Hostile use"). Here:

- Route classes: a route's own `max_body_size` (FastAPI's; the class sessions declare theirs),
  else `arrays` (`body_class`, in its `openapi_extra`: the conv and pool traces, which take
  number grids) and routes that read their body raw (a picture: they check its size
  themselves) `max_body_bytes`, else (every other JSON route) `max_json_body_bytes`. A body
  over its route's limit is refused by `app.limits.BodyLimitMiddleware` (413, JSON, before
  FastAPI's plain-text one) before it is read.
- `JsonShape`: a streaming scan of the raw bytes (vectorised with numpy, in slices, so it holds
  a few bytes per byte of one slice): brackets and commas outside strings, strings delimited by
  quotes not escaped by an odd run of backslashes. Up to the first syntax error its reading is
  the parser's; past it the parser stops anyway. `JsonShapeMiddleware` feeds it each chunk of a
  JSON route's body and refuses at the first limit passed, before the rest is read: 422 for
  `max_json_depth`, 413 for `max_json_values` and `max_json_string_bytes`; the body that passes
  is handed to the app whole. Scanned: a body labelled JSON on any route (a route may parse one
  itself), and one without a content type on a route FastAPI parses as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import params
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

__all__ = ["BODY_CLASS_KEY", "JsonShape", "JsonShapeMiddleware", "RouteBodies", "body_class"]

BODY_CLASS_KEY = "x-body-class"
SLICE = 1 << 18  # bytes scanned at once: the scan's temporaries are a few times this
QUOTE, BACKSLASH, COMMA = 0x22, 0x5C, 0x2C
OPENERS, CLOSERS = (0x5B, 0x7B), (0x5D, 0x7D)  # [ {  and  ] }


def body_class(name: str) -> dict[str, Any]:
    """A route's `openapi_extra` naming its body class (see the module docstring)."""
    return {BODY_CLASS_KEY: name}


@dataclass(frozen=True)
class RouteBody:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    limit: int  # bytes
    json: bool  # FastAPI parses its body as JSON


class RouteBodies:
    """Each route's body limit and whether it takes JSON, read once from the app's routes
    (every router included, with the `max_body_size` a route or its router declares)."""

    def __init__(self, settings: Settings, app: Any) -> None:
        self.settings = settings  # the app's, as its other middleware limits
        self.app = app
        self.routes: list[RouteBody] | None = None

    def load(self) -> list[RouteBody]:
        if self.routes is None:
            found = []
            for context in iter_route_contexts(self.app.routes):
                route = context.original_route
                if not isinstance(route, APIRoute):
                    continue
                field = route.body_field
                takes_json = field is not None and not isinstance(field.field_info, params.Form)
                own = getattr(context, "max_body_size", None)  # FastAPI's (sessions declare it)
                named = (context.openapi_extra or {}).get(BODY_CLASS_KEY)
                # a route reading its body raw (a picture) checks its own size: the general limit
                small = takes_json and named != "arrays"
                limit = (
                    own
                    if own is not None
                    else (
                        self.settings.max_json_body_bytes if small else self.settings.max_body_bytes
                    )
                )
                pattern = compile_path(context.path_format)[0]
                methods = frozenset(context.methods or ())
                found.append(RouteBody(pattern, methods, limit, takes_json))
            self.routes = found
        return self.routes

    def find(self, scope: Scope) -> RouteBody | None:
        for route in self.load():
            if scope["method"] in route.methods and route.pattern.match(scope["path"]):
                return route
        return None

    def limit(self, scope: Scope) -> int:
        """The byte limit of this request's route; a path no route takes: the JSON one."""
        route = self.find(scope)
        return route.limit if route else self.settings.max_json_body_bytes


class JsonShape:
    """Depth, values (elements and members) and longest string of a JSON text fed in pieces."""

    def __init__(self) -> None:
        self.depth = self.max_depth = self.values = self.longest = 0
        self.seen = 0  # bytes fed so far
        self.in_string = False
        self.string_start = -1  # offset of the open string's quote
        self.backslashes = 0  # backslashes ending what was fed (escape the next byte when odd)

    def feed(self, data: bytes) -> None:
        for start in range(0, len(data), SLICE):
            self._scan(np.frombuffer(data, np.uint8, min(SLICE, len(data) - start), start))

    def _scan(self, chunk: np.ndarray) -> None:
        size = chunk.size
        backslash = chunk == BACKSLASH
        quotes = np.flatnonzero(chunk == QUOTE)
        if quotes.size and (self.backslashes or backslash.any()):
            others = np.flatnonzero(~backslash)  # for each quote, the last byte not a backslash
            before = np.searchsorted(others, quotes) - 1
            run = np.where(before >= 0, quotes - 1 - others[np.maximum(before, 0)],
                           quotes + self.backslashes)  # fmt: skip
            quotes = quotes[run % 2 == 0]
        if backslash.all():
            self.backslashes += size
        else:
            self.backslashes = size - 1 - int(np.flatnonzero(~backslash)[-1])
        toggles = np.zeros(size, np.uint8)
        toggles[quotes] = 1
        inside = np.bitwise_xor.accumulate(toggles)
        if self.in_string:
            inside ^= 1
        outside = inside == 0
        opens = (chunk == OPENERS[0]) | (chunk == OPENERS[1])
        opens &= outside
        closes = (chunk == CLOSERS[0]) | (chunk == CLOSERS[1])
        closes &= outside
        steps = np.cumsum(opens.view(np.int8) - closes.view(np.int8), dtype=np.int64)
        if steps.size:
            self.max_depth = max(self.max_depth, self.depth + int(steps.max()))
            self.depth += int(steps[-1])
        self.values += int(np.count_nonzero(opens)) + int(
            np.count_nonzero((chunk == COMMA) & outside)
        )
        self._strings(quotes + self.seen)
        self.in_string = bool(inside[-1]) if size else self.in_string
        self.seen += size

    def _strings(self, quotes: np.ndarray) -> None:
        """Lengths of the strings the real quotes close (one may have opened in a past piece)."""
        if self.string_start >= 0:
            quotes = np.concatenate(([self.string_start], quotes))
        pairs = quotes.size // 2
        if pairs:
            lengths = quotes[1 : 2 * pairs : 2] - quotes[0 : 2 * pairs : 2] - 1
            self.longest = max(self.longest, int(lengths.max()))
        self.string_start = int(quotes[-1]) if quotes.size % 2 else -1

    def open_string(self) -> int:
        """Bytes of a string still open (not closed yet)."""
        return self.seen - self.string_start - 1 if self.string_start >= 0 else 0

    def refusal(self, settings: Settings) -> tuple[int, dict[str, Any]] | None:
        """(status, detail item) for the first limit passed, else None."""
        if self.max_depth > settings.max_json_depth:
            limit = settings.max_json_depth
            return 422, _item(f"the JSON body nests deeper than {limit} levels", "json_too_deep",
                              limit)  # fmt: skip
        if self.values > settings.max_json_values:
            limit = settings.max_json_values
            return 413, _item(f"the JSON body holds more than {limit:,} values",
                              "json_too_many_values", limit)  # fmt: skip
        if max(self.longest, self.open_string()) > settings.max_json_string_bytes:
            limit = settings.max_json_string_bytes
            return 413, _item(f"a string of the JSON body is over {limit:,} bytes",
                              "json_string_too_long", limit)  # fmt: skip
        return None


def _item(message: str, kind: str, limit: int) -> dict[str, Any]:
    return {"loc": ["body"], "msg": message, "type": kind, "ctx": {"limit": limit}}


def _scanned(route: RouteBody | None, headers: Headers) -> bool:
    """A body labelled JSON (a route may read one itself: the effective receptive field takes
    a form or JSON), or one FastAPI parses as JSON for its route (no content type too)."""
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    labelled = kind == "application/json" or kind.endswith("+json")
    return labelled or (not kind and route is not None and route.json)


class JsonShapeMiddleware:
    """Scan a JSON body as it arrives (`JsonShape`); refuse at the first limit passed, else
    hand the app the whole body at once. Other bodies pass untouched."""

    def __init__(self, app: ASGIApp, routes: RouteBodies) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if not _scanned(self.routes.find(scope), Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        settings = self.routes.settings
        shape, chunks = JsonShape(), []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nobody to answer
                return
            chunk = message.get("body", b"")
            shape.feed(chunk)
            chunks.append(chunk)
            refused = shape.refusal(settings)
            if refused is not None:
                await _send_refusal(send, *refused)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        handed = False

        async def replay() -> Message:
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_refusal(send: Send, status: int, item: dict[str, Any]) -> None:
    """The answer; the rest of the body (within its class's byte limit) is read and dropped by
    uvicorn, so that a client still sending reads it rather than a reset connection."""
    answer = json.dumps({"detail": [item]}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(answer)).encode()),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": answer})
