"""A loopback HTTP server for the download tests: nothing ever leaves the machine.

Each path serves bytes in one way: whole, cut short (a Content-Length larger than what is sent,
then the connection closes), slow (nothing for a while, so the client's timeout fires), or 404.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from cnncore.pretrained import PUBLISHED, PublishedWeights
from tests.cnncore.torchvision_reference import generated_state


@dataclass
class Served:
    body: bytes
    mode: str = "whole"  # whole | truncated | slow
    delay: float = 0.0  # seconds before the first byte (slow)


@dataclass
class WeightsServer:
    port: int
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


def _handler(server: WeightsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.lstrip("/")
            server.requests.append(path)
            served = server.files.get(path)
            if served is None:
                self.send_error(404, "Not Found")
                return
            if served.mode == "slow":
                time.sleep(served.delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            try:
                if served.mode == "truncated":
                    self.wfile.write(served.body[: len(served.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(served.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): nothing to answer

        def log_message(self, *args) -> None:  # quiet
            pass

    return Handler


@contextmanager
def weights_server() -> Iterator[WeightsServer]:
    state = WeightsServer(0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def published_file(name: str, layout: dict) -> tuple[bytes, str]:
    """A torch.save'd state dict in the exact published layout (random values) and its sha256."""
    buffer = io.BytesIO()
    torch.save(generated_state(layout), buffer)
    body = buffer.getvalue()
    return body, hashlib.sha256(body).hexdigest()


def entry_for(server: WeightsServer, name: str, digest: str, path: str | None = None) -> \
        PublishedWeights:  # fmt: skip
    """The catalogue entry of `name` as if torchvision published this file on the server: the
    name carries the digest prefix, as torchvision's do."""
    real = PUBLISHED[name]
    url = server.url(path or f"{name}-{digest[:8]}.pth")
    return PublishedWeights(name, url, real.top1, real.top5, real.params, real.recipe)
