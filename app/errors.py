"""Map core errors to 422 JSON in FastAPI's own shape, so every error names its field."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cnncore.errors import CNNCoreError


def core_error_response(exc: CNNCoreError, location: str = "body") -> JSONResponse:
    loc = [location, exc.field] if exc.field else [location]
    return JSONResponse(
        status_code=422,
        content={"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]},
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_core_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CNNCoreError)
        return core_error_response(exc)

    app.add_exception_handler(CNNCoreError, on_core_error)
