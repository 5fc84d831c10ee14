"""Uploads in API tests: ones the server must judge from their headers alone, a fresh
feature cache for the tests that post pictures, a network as the ONNX file a student
uploads, and a state dict whose values overflow."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def own_feature_cache(app) -> Iterator:
    """A new FeatureCache for `app` while in the block (results of another test must not make
    this one's "cached"); only this override is removed afterwards."""
    from app.feature_cache import FeatureCache, get_feature_cache
    from app.settings import get_settings

    cache = FeatureCache(get_settings())
    app.dependency_overrides[get_feature_cache] = lambda: cache
    try:
        yield cache
    finally:
        app.dependency_overrides.pop(get_feature_cache, None)


def declared_upload(client, length: int, path: str = "/api/features"):
    """POST a multipart body of a few bytes whose content-length header claims `length` bytes:
    an over-limit claim must be refused (413) before the server reads the body."""
    return client.post(
        path,
        content=b"--x--\r\n",
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "content-length": str(length),
        },
    )


def onnx_export(model, shape: tuple[int, ...]) -> bytes:
    """`model` exported by torch.onnx (TorchScript exporter: fast, batch axis free) for inputs
    of `shape` (C, H, W)."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), buffer, dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    return buffer.getvalue()


def overflowing_state() -> bytes:
    """A student's state dict (safetensors) whose values overflow float32: a grey TinyVGG
    (seed 4, 4 classes) with its first two convs' weights scaled by 1e30, so block1.conv1's
    values reach ~1e30 (finite), block1.conv2's overflow to ±inf, and inf − inf makes NaN
    further on."""
    import torch
    from safetensors.torch import save

    from cnncore.models import build_model
    from cnncore.seeding import seeded

    with seeded(4):
        model = build_model("tinyvgg", in_channels=1, num_classes=4)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for key in ("block1.conv1.weight", "block1.conv2.weight"):
        state[key] = state[key] * torch.tensor(1e30)
    return save(state)
