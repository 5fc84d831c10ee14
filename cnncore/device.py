"""Pick the torch device: CUDA when present, else CPU, unless a setting overrides it."""

from functools import lru_cache

import torch

from cnncore.errors import CNNCoreError


@lru_cache(maxsize=8)
def resolve_device(preference: str = "auto") -> torch.device:
    """`auto` → `cuda:0` when available, else `cpu`; `cpu`, `cuda`, `cuda:N` as given."""
    if preference == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as exc:
        raise CNNCoreError(f"unknown device {preference!r}", field="device") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CNNCoreError("device 'cuda' was asked for but no CUDA GPU is present", "device")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda:0")
    return device
