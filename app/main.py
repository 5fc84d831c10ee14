"""Assembles the app: routers, static files, error handlers, request limits, security headers,
allowed hosts, HEAD as GET, the server's torch threads."""

import importlib
import os
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

import app.routes as route_modules  # a name of its own: `app` below is the FastAPI app
from app.errors import install_error_handlers
from app.http_guards import AllowedHostsMiddleware, HeadAsGetMiddleware, allowed_names
from app.json_guard import JsonShapeMiddleware, RouteBodies
from app.limits import BodyLimitMiddleware, upload_paths
from app.security import SecurityHeadersMiddleware
from app.settings import ROOT, Settings, get_settings
from app.uploaded_models import get_uploaded_models
from app.warmup import RequestActivityMiddleware, start_warmup

# npm packages the pages import (the Makefile's `vendor` target installs them, pinned there)
VENDORED = ("uplot",)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; `settings` (default: the environment's) sets its middleware limits and CORS."""

    @asynccontextmanager
    async def lifespan(_application: FastAPI) -> AsyncIterator[None]:
        start_warmup(get_settings())  # caches a first visit needs (app/warmup.py)
        get_uploaded_models()  # uploaded models become known by name (app/uploaded_models.py)
        yield

    application = FastAPI(title="cnnviz", version="0.1.0", docs_url="/api/docs",
                          redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    install_error_handlers(application)
    settings = settings or get_settings()
    # torch makes its compile-cache folder when torch._dynamo is first imported (an nn.Tanh run
    # under a hook is enough): under the data folder, like everything else the app writes.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(settings.data_dir / "torch-cache"))
    if settings.torch_threads > 0:
        # Now, before any request thread touches torch: a thread keeps the count it first saw.
        torch.set_num_threads(settings.torch_threads)
    # Front-end libraries come from npm at install time (`make vendor`), never from a CDN: mounted
    # before /static, so /static/vendor/<name>/ serves build/npm/node_modules/<name>/dist.
    for name in VENDORED:
        folder = ROOT / "build" / "npm" / "node_modules" / name / "dist"
        application.mount(f"/static/vendor/{name}", StaticFiles(directory=folder, check_dir=False),
                          name=f"vendor-{name}")  # fmt: skip
    application.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    routers = []
    for info in sorted(pkgutil.iter_modules(route_modules.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"app.routes.{info.name}")
        application.include_router(module.router)
        routers.append(module.router)
    # Added innermost first: the 413 of the body limit still gets the security headers. A JSON
    # body is bounded by its route's class before it is read, then by its shape before parsing.
    bodies = RouteBodies(settings, application)
    application.add_middleware(JsonShapeMiddleware, routes=bodies)
    application.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes,
                               max_multipart_bytes=settings.max_multipart_bytes,
                               upload_paths=upload_paths(routers), route_bodies=bodies)
    application.add_middleware(HeadAsGetMiddleware)
    application.add_middleware(AllowedHostsMiddleware, names=allowed_names(settings))
    application.add_middleware(SecurityHeadersMiddleware)
    # outermost: every request counts as activity, which the warm-up's second part waits out
    application.add_middleware(RequestActivityMiddleware)
    if settings.cors_origins:  # closed by default: the pages call their own origin only
        application.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                                   allow_methods=["GET", "POST", "DELETE"], allow_headers=["*"],
                                   expose_headers=["Retry-After"])
    return application


app = create_app()
