"""What every request and response body of the explorers shares.

A base for bodies whose numbers must be finite (`FiniteBody`), bounded number arrays (`Value`,
`Volume`) and the check that they are rectangular, a trace request's input volume
(`TraceInputBody`), the padding of a trace (`PaddingOut`), the
configurable limits of `Settings` (`at_most`, checked after parsing and naming the field in a
422), and how a large trace body is built and sent (`gc_paused`, `json_response`).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Response
from pydantic import BaseModel, Field, field_validator, model_validator

from app.settings import Settings
from cnncore.arithmetic import Padding2d
from cnncore.errors import CNNCoreError

PARSE_CEILING = 256  # per array axis, before the configurable limits apply
MAX_VALUE = 1e6  # |input|, |kernel|, |bias|: keeps every product and sum finite and readable

Value = Annotated[float, Field(ge=-MAX_VALUE, le=MAX_VALUE, allow_inf_nan=False)]
Row = Annotated[list[Value], Field(min_length=1, max_length=PARSE_CEILING)]
Plane = Annotated[list[Row], Field(min_length=1, max_length=PARSE_CEILING)]
Volume = Annotated[list[Plane], Field(min_length=1, max_length=PARSE_CEILING)]


# --- requests ---------------------------------------------------------------------------------


def name_non_finite(data: Any) -> Any:
    """Replace NaN and ±Infinity anywhere in a raw body by text that parses as no number.

    Python's JSON reader accepts these literals, but JSON itself cannot carry them back: a 422
    echoing the offending value could not be written out (a 500). As text, the value fails
    validation like any other wrong type and its field is named. Walks with a stack, in place,
    so a deeply nested body cannot exhaust the recursion limit.
    """
    if isinstance(data, float) and not math.isfinite(data):
        return f"{data} (not a finite number)"
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                node[key] = f"{item} (not a finite number)"
            elif isinstance(item, (list, dict)):
                stack.append(item)
    return data


class FiniteBody(BaseModel):
    """A request body in which NaN and ±Infinity are refused as text (see `name_non_finite`)."""

    @model_validator(mode="before")
    @classmethod
    def _non_finite_as_text(cls, data: Any) -> Any:
        return name_non_finite(data)


def rectangular(values: list, name: str, axes: str) -> list:
    """Refuse ragged nested lists: every sub-list along an axis has the first one's length.

    `axes` names the axes, outermost first (`"CHW"`), for a message a student can act on.
    """

    def check(node: list, depth: int, where: str) -> None:
        if depth == len(axes) - 1:
            return
        lengths = {len(child) for child in node}
        if len(lengths) > 1:
            raise ValueError(
                f"{name} must be a rectangular {'×'.join(axes)} array: the {axes[depth + 1]} "
                f"axis{where} has lengths {sorted(lengths)}"
            )
        for index, child in enumerate(node):
            check(child, depth + 1, f"{where} [{axes[depth]} {index}]")

    check(values, 0, "")
    return values


def at_most(field: str, value: float, limit: float, what: str) -> None:
    """Refuse `value` above `limit` with a 422 naming `field` (through `CNNCoreError`)."""
    if value > limit:
        raise CNNCoreError(f"the {what} may be at most {limit}, got {value}", field)


class TraceInputBody(FiniteBody):
    """A trace request (convolution, pooling): a rectangular C×H×W input first."""

    input: Volume = Field(description="C×H×W")

    @field_validator("input")
    @classmethod
    def _input_is_rectangular(cls, values: list) -> list:
        return rectangular(values, "input", "CHW")

    def check_input_limits(self, settings: Settings) -> None:
        """The configurable limits of a trace's input; each refusal names `input` (a 422)."""
        channels, height, width = len(self.input), len(self.input[0]), len(self.input[0][0])
        at_most("input", max(height, width), settings.max_trace_size, "input height and width")
        at_most("input", channels, settings.max_trace_channels, "input channels")


# --- responses --------------------------------------------------------------------------------


class PaddingOut(BaseModel):
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def of(cls, padding: Padding2d) -> PaddingOut:
        return cls(top=padding.top, bottom=padding.bottom, left=padding.left, right=padding.right)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a large trace body is built (also usable
    as a decorator: `@gc_paused()`).

    A body is tens of thousands of small lists and dicts: allocating them triggers collection
    after collection, each older-generation pass walking every object of the process, torch's
    and the app's included (docs/PERFORMANCE.md, Trace). None of them can form a cycle, so there
    is nothing for the collector to find. Process-wide: of two bodies built at once, the first to
    finish may turn it back on early, which only costs the other its speed-up.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def json_response(body: dict[str, Any]) -> Response:
    """A trace body sent as JSON directly; floats print with repr (full float64 precision).

    Validating tens of thousands of steps against the response model would triple the time of a
    large answer, so the trace routes skip that (their tests validate answers against it).
    """
    return Response(json.dumps(body, allow_nan=False), media_type="application/json")


def finite_or_none(value: float) -> float | None:
    """`value`, or None (JSON null) for ±inf and NaN, which JSON cannot write."""
    return value if math.isfinite(value) else None
