"""Request checks before any route runs: the Host header, HEAD as GET, a client gone mid-body.

- `AllowedHostsMiddleware`: DNS rebinding (a page on attacker.example whose name is made to
  resolve to 127.0.0.1) reaches a server on loopback with `Host: attacker.example`; refusing
  unknown names stops it. Allowed: any IP literal (a browser that sends one navigated to that
  address itself), `localhost`, the name `cnnviz serve --host` binds, this machine's host name
  (and `.local`, its mDNS name), `testserver` (Starlette's TestClient: a single-label name no
  public DNS serves) and the `allowed_hosts` setting (`"*"`: any). 400 JSON naming the header.
  Starlette's TrustedHostMiddleware does the matching on names alone and answers in plain text.
- `HeadAsGetMiddleware`: HEAD answered wherever GET is (RFC 9110 §9.3.2), with the GET's status
  and headers and no body. The GET handler runs; once its headers are sent it is told the client
  disconnected, so a stream (SSE) ends instead of running for nobody.
- `on_client_disconnect`: a client that leaves mid-body (or is closed for being too slow,
  app/http_server.py) is not an error of the server: no 500, no traceback in the log.
"""

from __future__ import annotations

import ipaddress
import json
import socket

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

__all__ = ["AllowedHostsMiddleware", "HeadAsGetMiddleware", "allowed_names", "host_allowed"]


def allowed_names(settings: Settings) -> frozenset[str]:
    """Host names (not IP literals, which are always allowed) this server answers to."""
    machine = socket.gethostname().lower()
    names = {"localhost", "testserver", machine, f"{machine}.local", settings.host.lower()}
    return frozenset(names | {name.lower().rstrip(".") for name in settings.allowed_hosts})


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """Whether a Host header (name or address, with or without its port) may be served."""
    if not host or "*" in names:
        return True
    if host.startswith("["):  # [IPv6]:port
        literal = host[1 : host.find("]")] if "]" in host else ""
    else:
        literal = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(literal)
        return True
    except ValueError:
        return literal.lower().rstrip(".") in names


class AllowedHostsMiddleware:
    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if host_allowed(host, self.names):
            await self.app(scope, receive, send)
            return
        message = "this server does not answer to that host name (setting allowed_hosts)"
        detail = [{"loc": ["header", "host"], "msg": message, "type": "host_not_allowed"}]
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = False

        async def receive_until_answered() -> Message:
            if started:
                return {"type": "http.disconnect"}
            return await receive()

        async def headers_only(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive_until_answered, headers_only)


async def on_client_disconnect(_request: Request, _exc: Exception) -> Response:
    """Nobody reads this answer: the client has gone."""
    return Response(status_code=400)
