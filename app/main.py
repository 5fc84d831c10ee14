"""Assembles the app: routers, static files, error handlers, security headers."""

import importlib
import pkgutil

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import app.routes
from app.errors import install_error_handlers
from app.security import SecurityHeadersMiddleware
from app.settings import ROOT


def create_app() -> FastAPI:
    application = FastAPI(title="cnnviz", version="0.1.0", docs_url="/api/docs",
                          redoc_url=None, openapi_url="/openapi.json")
    install_error_handlers(application)
    application.add_middleware(SecurityHeadersMiddleware)
    application.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    for info in sorted(pkgutil.iter_modules(app.routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"app.routes.{info.name}")
        application.include_router(module.router)
    return application


app = create_app()
