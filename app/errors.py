"""Map errors to 422 JSON in FastAPI's own shape, so every error names its field."""

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cnncore.errors import CNNCoreError

ECHO_LIMIT = 200  # characters of the offending input echoed back; a 64×64 grid is not worth it


def core_error_response(exc: CNNCoreError, location: str = "body") -> JSONResponse:
    loc = [location, exc.field] if exc.field else [location]
    return JSONResponse(
        status_code=422,
        content={"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]},
    )


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/±Infinity (which Python's JSON reader accepts) and objects become text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return str(value)


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's default handler echoes inputs back and fails (a 500) when one is NaN."""
    detail = []
    for error in exc.errors():
        item = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "value_error"))}
        if "input" in error:
            echoed = json_safe(error["input"])
            if len(json.dumps(echoed)) <= ECHO_LIMIT:
                item["input"] = echoed
        if "ctx" in error:
            item["ctx"] = json_safe(error["ctx"])
        detail.append(item)
    return JSONResponse(status_code=422, content={"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    async def on_core_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CNNCoreError)
        return core_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error_response(exc)

    app.add_exception_handler(CNNCoreError, on_core_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
