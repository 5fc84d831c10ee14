"""Request and response bodies of the pooling API (`/api/pool`), and the step serialiser.

Requests are bounded by parse-time ceilings, then by the trace limits of `Settings` (shared with
the convolution trace). A response turns a `cnncore.pooling` trace into the JSON the explorer
animates: whole tensors as nested lists plus one step per output cell, ordered channel, y, x,
with window rows and columns in unpadded input coordinates (as the convolution steps).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from app.schemas.common import PaddingOut, TraceInputBody, Volume, at_most, gc_paused, rectangular
from app.settings import Settings
from cnncore.pooling import PoolBackward, PoolTrace

PARSE_CEILING = 64  # kernel, stride and padding before the configurable limits apply

Size = Annotated[int, Field(ge=1, le=PARSE_CEILING)]
Pad = Annotated[int, Field(ge=0, le=PARSE_CEILING)]
Kind = Literal["max", "avg", "l2", "global_avg"]


class PoolTraceRequest(TraceInputBody):
    kind: Kind = "max"
    kernel_size: Size | tuple[Size, Size] = Field(2, description="ignored by global_avg")
    stride: Size | tuple[Size, Size] | None = Field(None, description="default: kernel_size")
    padding: Pad | tuple[Pad, Pad] = Field(0, description="at most half the kernel, per axis")
    ceil_mode: bool = False
    count_include_pad: bool = Field(True, description="avg: the zero padding counts in the mean")
    grad_output: Volume | None = Field(None, description="C×H'×W' upstream gradient to route")

    @field_validator("grad_output")
    @classmethod
    def _grad_is_rectangular(cls, values: list | None) -> list | None:
        return values if values is None else rectangular(values, "grad_output", "CHW")

    def check_limits(self, settings: Settings) -> None:
        """The configurable trace limits; each refusal names its field (a 422)."""
        self.check_input_limits(settings)
        kernel = self.kernel_size if isinstance(self.kernel_size, tuple) else (self.kernel_size,)
        at_most("kernel_size", max(kernel), settings.max_trace_kernel, "kernel size")


class PoolShape(BaseModel):
    channels: int
    height: int
    width: int
    formula: dict[str, str] = Field(description="height, width, general: substituted sizes")


class PoolStepOut(BaseModel):
    channel: int
    y: int
    x: int
    rows: list[int] = Field(description="input rows of the window, unpadded coordinates")
    cols: list[int] = Field(description="input columns of the window, unpadded coordinates")
    padded: list[list[bool]] = Field(description="kh×kw: the cell lies outside the input")
    values: list[list[float | None]] = Field(
        description="kh×kw window; padding is 0 (avg, l2) or null (max, where it stands for −∞)"
    )
    value: float
    chosen: tuple[int, int] | None = Field(None, description="max: (row, col) of the maximum")
    weights: list[list[float]] | None = Field(
        None, description="avg, l2: value = Σ weight·cell (1/divisor, or cell/‖window‖)"
    )
    divisor: float | None = Field(None, description="avg: cells the sum is divided by")


class PoolRouteOut(BaseModel):
    channel: int
    y: int
    x: int
    grad: float = Field(description="upstream gradient at this output cell")
    amounts: list[list[float]] = Field(description="kh×kw share sent to each window cell")


class PoolBackwardOut(BaseModel):
    grad_output: list[list[list[float]]]
    grad_input: list[list[list[float]]]
    routes: list[PoolRouteOut]


class PoolTraceResponse(BaseModel):
    kind: Kind
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: PaddingOut
    ceil_mode: bool
    count_include_pad: bool
    shape: PoolShape
    output: list[list[list[float]]]
    steps: list[PoolStepOut]
    backward: PoolBackwardOut | None = None


_PER_KIND = {"max": ("chosen",), "l2": ("weights",), "avg": ("weights", "divisor"),
             "global_avg": ("weights", "divisor")}


@gc_paused()
def pool_trace_body(trace: PoolTrace, backward: PoolBackward | None) -> dict[str, Any]:
    """The JSON body of a pooling trace (plain floats at full float64 precision)."""
    kept = ("channel", "y", "x", "rows", "cols", "padded", "values", "value",
            *_PER_KIND[trace.kind])
    steps = [{key: fields[key] for key in kept} for fields in map(vars, trace.steps())]
    channels, height, width = trace.output.shape
    pad_h, pad_w = trace.padding
    body = {
        "kind": trace.kind,
        "kernel_size": trace.kernel_size,
        "stride": trace.stride,
        "padding": {"top": pad_h, "bottom": pad_h, "left": pad_w, "right": pad_w},
        "ceil_mode": trace.ceil_mode,
        "count_include_pad": trace.count_include_pad,
        "shape": {"channels": channels, "height": height, "width": width,
                  "formula": trace.formula},
        "output": trace.output.tolist(),
        "steps": steps,
        "backward": None,
    }
    if backward is not None:
        grads, amounts = backward.grad_output.tolist(), backward.amounts.tolist()
        body["backward"] = {
            "grad_output": grads,
            "grad_input": backward.grad_input.tolist(),
            "routes": [
                {"channel": c, "y": y, "x": x, "grad": grads[c][y][x], "amounts": amounts[c][y][x]}
                for c in range(channels) for y in range(height) for x in range(width)
            ],
        }
    return body
