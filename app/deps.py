"""Shared resources as FastAPI dependencies."""

from typing import Annotated

import torch
from fastapi import Depends

from app.settings import Settings, get_settings
from cnncore.device import resolve_device


def get_device() -> torch.device:
    return resolve_device(get_settings().device)


def settings_dep() -> Settings:
    return get_settings()


# A route's settings parameter (tests override `settings_dep`).
AppSettings = Annotated[Settings, Depends(settings_dep)]
