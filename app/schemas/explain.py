"""Why this prediction at the API edge: requests (bounded) and answers (maps as PNG data URLs)."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from cnncore.colormaps import apply_colormap
from cnncore.images import encode_png

RESULT_ID = r"^[A-Za-z0-9_-]{16,64}$"
MAX_CLASS = 100_000  # larger than any model's class count; the model's own count is checked
HEATMAP = "magma"


def heatmap_url(values: np.ndarray) -> str:
    """A [0, 1] map as a coloured PNG data URL (level 255 = the map's maximum); NaN (a model
    whose values overflowed) is drawn at level 0."""
    levels = np.clip(np.rint(np.nan_to_num(values * 255)), 0, 255).astype(np.uint8)
    png = encode_png(apply_colormap(levels, HEATMAP))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class ExplainIn(BaseModel):
    result: str = Field(pattern=RESULT_ID, description="id of a learned /api/features answer")
    target: int | None = Field(None, ge=0, le=MAX_CLASS, description="class; default the top one")
    layer: str | None = Field(
        None, min_length=1, max_length=200, description="the CAMs' layer; default the deepest map"
    )
    integrated_gradients: bool = Field(False, description="also integrated gradients (slower)")


class LayerChoice(BaseModel):
    name: str
    shape: list[int]


class ExplainOut(BaseModel):
    layer: str
    layer_shape: list[int]
    default_layer: str
    reason: Literal["deepest_spatial"] = "deepest_spatial"
    layers: list[LayerChoice] = Field(description="layers with a spatial map, in order")
    target: int
    label: str | None
    score: float | None = Field(description="the class's logit; null: ±inf or NaN")
    probability: float | None = Field(description="null: NaN (logits that overflowed)")
    maps: dict[str, str] = Field(description="method → PNG data URL at the picture's size")
    size: list[int]


class OcclusionIn(BaseModel):
    result: str = Field(pattern=RESULT_ID)
    target: int | None = Field(None, ge=0, le=MAX_CLASS)
    patch: int = Field(16, ge=1, le=512, description="side of the grey patch, in pixels")
    stride: int = Field(8, ge=1, le=512, description="pixels between two patch positions")


class OcclusionOut(BaseModel):
    id: str
    state: Literal["running", "done", "stopped", "failed"]
    done: int
    total: int
    patch: int
    stride: int
    target: int
    map: str | None = Field(None, description="PNG data URL: where covering lowers the score")
    largest_drop: float | None = None
