"""Map errors to JSON in FastAPI's own shape, so every error names its field and its kind.

Each item of `{"detail": [...]}` carries `loc` (the field), `msg` (English, for people reading
the raw answer), `type` (a stable code: pydantic's error type such as `less_than_equal`, or ours
such as `too_large`) and, where the message has parameters, a small `ctx` such as `{"le": 0.01}`.
The pages translate `type` with `ctx` through their message catalogues (`error.type.*` in
`static/i18n/<lang>/common.json`, see `static/js/api.js`) and show `msg` only for a type they do
not know. Nothing the client sent is echoed: neither in an `input` field (FastAPI's default
handler echoes it and fails with a 500 when it is NaN) nor inside `ctx`, whose keys are limited
to bounds and allowed values taken from the schema.

A failed request lets go of what it held at once: each handler clears the local variables of
the frames in the exception's traceback (and in its cause's and context's), which would
otherwise keep a request's arrays alive until the garbage collector finds the cycle. An
unexpected exception becomes a JSON 500 that carries the security headers (Starlette's
`ServerErrorMiddleware` answers outside every other middleware) and is still logged by uvicorn.
"""

import logging
import math
import re
import sqlite3
import time
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.http_guards import on_client_disconnect
from app.security import HEADERS as SECURITY_HEADERS
from cnncore.errors import CNNCoreError
from cnncore.models.registry import UnknownModelError

__all__ = [
    "core_error_response",
    "release_frames",
    "install_error_handlers",
    "safe_context",
    "validation_error_response",
]

# ctx keys worth a message parameter: bounds and allowed values from the schema, and the numbers
# a core refusal computed (cnncore: sizes, kernel, channels, the sum of the probabilities ...),
# never the client's raw input (pydantic's `error` key holds an exception whose text may quote
# the input). Only small finite numbers and short strings pass (`_small`).
SCHEMA_KEYS = frozenset(
    {"ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length", "expected", "limit",
     "retry_after", "max_digits", "decimal_places"}
)  # fmt: skip
CORE_KEYS = frozenset(
    {"size", "kernel", "stride", "padding", "padded", "dilation", "effective", "output",
     "output_padding", "groups", "channels", "out_channels", "total", "target", "classes",
     "entries", "cells", "shape", "expected_shape", "start", "stop", "width", "height", "pixels",
     "macs", "layer", "count", "model", "command",
     # a training run's estimate (app/runs/budget.py)
     "peak_gb", "limit_gb", "data_gb", "step_gb", "steps", "gmacs", "limit_gmacs", "events",
     "images", "batch",
     # a student's own dataset (app/datasets): the file a refusal is about
     "file",
     # a weights download or import (cnncore/pretrained_files.py, the `cnnviz weights` command):
     # the published URL or the administrator's mirror, the HTTP status, the digest prefixes,
     # disk bytes
     "url", "status", "got", "needed", "free",
     # an uploaded ONNX model (cnncore/onnx_import.py): what its file holds that is refused
     "domain", "input_name", "dimension", "operators",
     # an effective receptive field's gradient memory (cnncore/effective_rf_cost.py)
     "megabytes"}
)  # fmt: skip
CONTEXT_KEYS = SCHEMA_KEYS | CORE_KEYS
MAX_TEXT = 64  # characters of one ctx string
MAX_ITEMS = 32  # allowed literals listed
# pydantic compares NaN with a bound and reports the bound ("less than or equal to 0.01"), which
# sends a student looking in the wrong place; these types become `finite_number` for NaN/±inf.
COMPARISONS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
FINITE = {"type": "finite_number", "msg": "Input should be a finite number"}
# A string detail (404 "unknown model", 409, 503 ...) keeps its shape; `type` is added beside it.
STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    429: "too_many_requests",
    503: "unavailable",
}
# A core error class that deserves its own code; any CNNCoreError may also carry `code`.
CORE_ERROR_TYPES: dict[type[CNNCoreError], str] = {UnknownModelError: "unknown_model"}
QUOTED_OR_BARE = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(-?[\w.]+)")


def _small(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_TEXT


def allowed_literals(expected: str) -> list[str]:
    """pydantic writes a Literal's or an Enum's choices as text: "'max', 'avg' or 'l2'";
    a list of the values lets each language write its own "or"."""
    found = []
    for quoted, double, bare in QUOTED_OR_BARE.findall(expected):
        if quoted or double:
            found.append(quoted or double)
        elif bare != "or":
            found.append(bare)
    return found


def safe_context(ctx: Any) -> dict[str, Any]:
    """The message parameters of an error: known keys only, small finite values only."""
    if not isinstance(ctx, dict):
        return {}
    safe: dict[str, Any] = {}
    for key, value in ctx.items():
        if key not in CONTEXT_KEYS:
            continue
        if key == "expected" and isinstance(value, str):
            value = allowed_literals(value)
        if isinstance(value, (list, tuple)):
            if len(value) <= MAX_ITEMS and all(_small(item) for item in value):
                safe[key] = list(value)
        elif _small(value):
            safe[key] = value
    return safe


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def detail_item(error: dict[str, Any], default_type: str = "value_error") -> dict[str, Any]:
    """One error in the API's shape: loc, msg, type and (when it has parameters) ctx."""
    kind = str(error.get("type") or default_type)
    item: dict[str, Any] = {
        "loc": list(error.get("loc", ())),
        "msg": str(error.get("msg", "")),
        "type": kind,
    }
    if kind in COMPARISONS and _non_finite(error.get("input")):
        return item | FINITE
    ctx = safe_context(error.get("ctx"))
    if ctx:
        item["ctx"] = ctx
    return item


def core_error_response(exc: CNNCoreError, location: str = "body") -> JSONResponse:
    """A core refusal as a 422 naming its field; `type` is the class's code or `value_error`."""
    loc = [location, exc.field] if exc.field else [location]
    code = getattr(exc, "code", None) or next(
        (code for cls, code in CORE_ERROR_TYPES.items() if isinstance(exc, cls)), "value_error"
    )
    error = {"loc": loc, "msg": str(exc), "type": code, "ctx": getattr(exc, "ctx", None)}
    return JSONResponse(status_code=422, content={"detail": [detail_item(error)]})


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """pydantic's errors without the inputs it would echo back."""
    detail = [detail_item(error) for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": detail})


# Paths whose answers are data, never a page: a missing one stays a JSON 404.
DATA_PREFIXES = ("/api/", "/static/", "/openapi.json", "/docs", "/redoc")


async def http_error_response(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own answer, plus a `type` for every item (or beside a string detail); a page
    that does not exist is an HTML page in the reader's language."""
    if exc.status_code == 404 and not request.url.path.startswith(DATA_PREFIXES):
        from app.routes.pages import not_found_page  # the pages import the app's settings

        return not_found_page(request)
    kind = STATUS_TYPES.get(exc.status_code, "http_error")
    if isinstance(exc.detail, list):
        detail = [detail_item(e, kind) if isinstance(e, dict) else e for e in exc.detail]
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)
    if isinstance(exc.detail, str) and exc.status_code >= 400:
        content = {"detail": exc.detail, "type": kind}
        return JSONResponse(content, exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)


def release_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames behind `exc`, its causes and contexts
    (`traceback.clear_frames`; frames still running are left alone), so the arrays a failed
    request allocated are freed now rather than when the garbage collector breaks the cycle
    exception → traceback → frame → locals. The traceback keeps its file and line numbers."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        traceback.clear_frames(found.__traceback__)
        found = found.__cause__ or found.__context__


def internal_error_response() -> JSONResponse:
    """The answer to an unexpected exception: no detail of it, the security headers kept."""
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    content = {"detail": "internal server error (logged on the server)", "type": "internal_error"}
    return JSONResponse(content, 500, headers=headers)


logger = logging.getLogger("uvicorn.error")
STORAGE_LOG_SECONDS = 60.0  # the same storage fault is logged at most this often
_storage_logged: dict[str, float] = {}


def storage_fault_response(exc: sqlite3.Error) -> JSONResponse:
    """503 for a database that cannot be read or written (deleted, replaced, read-only, disk
    full): a clear message, the fault in the server's log (each kind once a minute)."""
    text = str(exc) or type(exc).__name__
    now = time.monotonic()
    if now - _storage_logged.get(text, float("-inf")) >= STORAGE_LOG_SECONDS:
        _storage_logged[text] = now
        logger.error("runs database unavailable: %s (%s); requests that need it get 503 "
                     "until it is restored", text, type(exc).__name__)  # fmt: skip
    content = {"detail": "the runs database cannot be used right now (see the server log); "
               "try again once it is restored", "type": "unavailable"}  # fmt: skip
    return JSONResponse(content, 503, headers={"Retry-After": "30"})


def install_error_handlers(app: FastAPI) -> None:
    async def on_core_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CNNCoreError)
        release_frames(exc)
        return core_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        release_frames(exc)
        return validation_error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        release_frames(exc)
        return await http_error_response(request, exc)

    async def on_unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        # ServerErrorMiddleware re-raises `exc` after this answer, and uvicorn logs it.
        release_frames(exc)
        return internal_error_response()

    app.add_exception_handler(CNNCoreError, on_core_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)

    async def on_storage_fault(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, sqlite3.Error)
        release_frames(exc)
        return storage_fault_response(exc)

    app.add_exception_handler(sqlite3.Error, on_storage_fault)
