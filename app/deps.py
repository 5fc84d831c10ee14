"""Shared resources as FastAPI dependencies."""

import torch

from app.settings import Settings, get_settings
from cnncore.device import resolve_device


def get_device() -> torch.device:
    return resolve_device(get_settings().device)


def settings_dep() -> Settings:
    return get_settings()
