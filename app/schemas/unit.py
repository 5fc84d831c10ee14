"""A unit's computation at the API edge: the query (bounded) and the written-out answer."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from app.schemas.common import finite_or_none
from cnncore.unit import UnitComputation

MAX_INDEX = 1_000_000  # larger than any map side or unit count of the zoo at its largest input


class UnitQuery(BaseModel):
    layer: str = Field(min_length=1, max_length=200, description="layer name (dotted path)")
    channel: int = Field(0, ge=0, le=MAX_INDEX, description="channel, or unit of a 1-D layer")
    y: int = Field(0, ge=0, le=MAX_INDEX)
    x: int = Field(0, ge=0, le=MAX_INDEX)


def _plain(value: Any) -> Any:
    """Dataclasses, numpy arrays and tuples as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


class UnitOut(BaseModel):
    """`detail` holds the terms of `kind` as `cnncore.unit_layers` names them: conv (window,
    kernel, products, channel_sums per shown input channel, rows/cols/padded, bias, rest),
    conv_transpose, batch_norm, activation, identity, flatten, concat, max_pool/avg_pool,
    add (operands with their role), linear (largest contributions, softmax of the output)."""

    layer: str
    type: str
    kind: str
    channel: int
    y: int
    x: int
    shape: list[int]
    value: float | None = Field(
        description="the captured activation (float32); null: ±inf or NaN (values that overflowed)"
    )
    total: float | None = Field(
        description="the same number recomputed in float64 from the terms; null: ±inf or NaN"
    )
    sources: list[str] = Field(description="layers the unit reads; _input is the picture")
    detail: dict[str, Any]

    @classmethod
    def of(cls, unit: UnitComputation) -> UnitOut:
        plain = _plain(unit)
        for name in ("value", "total"):  # JSON has no ±inf nor NaN
            plain[name] = finite_or_none(plain[name])
        return cls(**plain)
