"""Request and response bodies of the convolution API (`/api/conv`), and the step serialisers.

Requests are bounded twice: fixed parse-time ceilings here (so no body can make pydantic build
something huge), then the configurable trace limits of `Settings` (`check_limits`), which name the
offending field in a 422. Responses turn a `cnncore.trace` dataclass into the JSON the explorer
animates: whole tensors as nested lists, plus one step per output cell (conv2d) or per input cell
(transposed conv2d), ordered by output channel, then row, then column.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from app.schemas.common import (
    PARSE_CEILING,
    FiniteBody,
    PaddingOut,
    TraceInputBody,
    Value,
    Volume,
    at_most,
    gc_paused,
    rectangular,
)
from app.settings import Settings
from cnncore.arithmetic import ConvShape
from cnncore.trace import ConvTrace, ConvTransposeTrace

MAX_SHAPE_SIZE = 4096  # /shape is arithmetic only
MAX_TRACE_GEOMETRY = 64  # stride, dilation, padding of a trace; the product budget does the rest

Size = Annotated[int, Field(ge=1, le=MAX_SHAPE_SIZE)]
Pad = Annotated[int, Field(ge=0, le=MAX_SHAPE_SIZE)]
SizeOrPair = Size | tuple[Size, Size]
PadOrPair = Pad | tuple[Pad, Pad]
PaddingSpec = Pad | tuple[Pad, Pad] | Literal["same", "valid"]

Step = Annotated[int, Field(ge=1, le=MAX_TRACE_GEOMETRY)]
TracePad = Annotated[int, Field(ge=0, le=MAX_TRACE_GEOMETRY)]
Activation = Literal["relu", "sigmoid", "tanh", "leaky_relu"]


# --- /shape -----------------------------------------------------------------------------------


class ShapeRequest(FiniteBody):
    channels: Size = 1
    height: Size
    width: Size
    kernel_size: SizeOrPair = 3
    stride: SizeOrPair = 1
    padding: PaddingSpec = 0
    dilation: SizeOrPair = 1
    out_channels: Size = 1
    groups: Size = 1
    bias: bool = True
    transposed: bool = False
    output_padding: PadOrPair = 0


class Volume3(BaseModel):
    channels: int
    height: int
    width: int


class Formula(BaseModel):
    height: str
    width: str
    general: str
    params: str


class ShapeResponse(BaseModel):
    input: Volume3
    output: Volume3
    params: int
    macs: int
    formula: Formula
    padding: PaddingOut

    @classmethod
    def of(cls, shape: ConvShape) -> ShapeResponse:
        return cls(
            input=Volume3(channels=shape.in_channels, height=shape.in_height, width=shape.in_width),
            output=Volume3(
                channels=shape.out_channels, height=shape.out_height, width=shape.out_width
            ),
            params=shape.params,
            macs=shape.macs,
            formula=Formula(**shape.formula),
            padding=PaddingOut.of(shape.padding),
        )


# --- /trace request ---------------------------------------------------------------------------


class TraceRequest(TraceInputBody):
    kernels: Annotated[list[Volume], Field(min_length=1, max_length=PARSE_CEILING)] = Field(
        description="O×(C/groups)×kh×kw, or C×(O/groups)×kh×kw when transposed (torch layouts)"
    )
    bias: Annotated[list[Value], Field(min_length=1, max_length=PARSE_CEILING)] | None = None
    stride: Step | tuple[Step, Step] = 1
    padding: TracePad | tuple[TracePad, TracePad] | Literal["same", "valid"] = 0
    dilation: Step | tuple[Step, Step] = 1
    groups: Annotated[int, Field(ge=1, le=PARSE_CEILING)] = 1
    activation: Activation | None = None
    transposed: bool = False
    output_padding: TracePad | tuple[TracePad, TracePad] = 0

    @field_validator("kernels")
    @classmethod
    def _kernels_are_rectangular(cls, values: list) -> list:
        return rectangular(values, "kernels", "OCHW")

    @field_validator("output_padding")
    @classmethod
    def _output_padding_only_when_transposed(cls, value, info: ValidationInfo):
        if not info.data.get("transposed") and value not in (0, (0, 0)):
            raise ValueError("output_padding applies only to transposed convolutions")
        return value

    def check_limits(self, settings: Settings) -> None:
        """The configurable trace limits; each refusal names its field (a 422)."""
        self.check_input_limits(settings)
        kernel_h, kernel_w = len(self.kernels[0][0]), len(self.kernels[0][0][0])
        # a transposed kernel array is C×(O/groups)×kh×kw: O counts its second axis per group
        filters = len(self.kernels[0]) * self.groups if self.transposed else len(self.kernels)
        at_most("kernels", max(kernel_h, kernel_w), settings.max_trace_kernel, "kernel size")
        at_most("kernels", filters, settings.max_trace_filters, "number of kernels (filters)")


# --- /trace response --------------------------------------------------------------------------


class ConvStep(BaseModel):
    out_channel: int
    y: int
    x: int
    rows: list[int] = Field(description="input rows of the window, unpadded coordinates")
    cols: list[int] = Field(description="input columns of the window, unpadded coordinates")
    padded: list[list[bool]] = Field(description="kh×kw: the tap falls in the padding")
    in_channels: list[int]
    products: list[list[list[float]]] = Field(description="Cg×kh×kw window × kernel")
    channel_sums: list[float]
    sum: float
    bias: float
    pre_activation: float
    value: float


class ConvTraceResponse(BaseModel):
    kind: Literal["conv2d"] = "conv2d"
    shape: ShapeResponse
    padding: PaddingOut
    activation: Activation | None
    padded_input: list[list[list[float]]]
    pre_activation: list[list[list[float]]]
    output: list[list[list[float]]]
    steps: list[ConvStep]


class ConvTransposeStep(BaseModel):
    out_channel: int
    y: int = Field(description="row of the INPUT cell that scatters")
    x: int = Field(description="column of the INPUT cell that scatters")
    rows: list[int] = Field(description="output rows it reaches, final (cropped) coordinates")
    cols: list[int] = Field(description="output columns it reaches, final (cropped) coordinates")
    cropped: list[list[bool]] = Field(description="kh×kw: the tap lands outside the output")
    in_channels: list[int]
    inputs: list[float] = Field(description="x[c, y, x] for each channel c of the group")
    contributions: list[list[list[float]]] = Field(description="Cg×kh×kw x[c, y, x]·w[c, o]")
    scatter: list[list[float]] = Field(description="kh×kw, the contributions summed over c")


class ConvTransposeTraceResponse(BaseModel):
    kind: Literal["conv_transpose2d"] = "conv_transpose2d"
    shape: ShapeResponse
    padding: PaddingOut
    activation: Activation | None
    pre_activation: list[list[list[float]]]
    output: list[list[list[float]]]
    bias: list[float]
    steps: list[ConvTransposeStep]


TraceResponse = Annotated[
    ConvTraceResponse | ConvTransposeTraceResponse, Field(discriminator="kind")
]


def _answer(kind: str, trace: ConvTrace | ConvTransposeTrace, steps: list[dict]) -> dict:
    shape = ShapeResponse.of(trace.shape).model_dump()
    return {
        "kind": kind,
        "shape": shape,
        "padding": shape["padding"],
        "activation": trace.activation,
        "steps": steps,
    }


def _steps(
    trace: ConvTrace | ConvTransposeTrace,
    per_cell: dict[str, list],
    per_channel: dict[str, list],
    per_step: dict[str, list],
) -> list[dict[str, Any]]:
    """One dict per step, ordered by output channel, then row, then column. Each value list is
    indexed [y][x] (per cell), [o] (per output channel) or [o][y][x] (per step: the trace's
    channel-first tensors are permuted so that the step's cell comes first)."""
    rows, cols = trace.rows.tolist(), trace.cols.tolist()
    out_channels, height, width = trace.in_channels.shape[0], len(rows), len(cols)
    return [
        {
            "out_channel": o,
            "y": i,
            "x": j,
            "rows": rows[i],
            "cols": cols[j],
            **{name: values[i][j] for name, values in per_cell.items()},
            **{name: values[o] for name, values in per_channel.items()},
            **{name: values[o][i][j] for name, values in per_step.items()},
        }
        for o in range(out_channels)
        for i in range(height)
        for j in range(width)
    ]


@gc_paused()
def conv_trace_body(trace: ConvTrace) -> dict[str, Any]:
    """The JSON body of a conv2d trace (plain floats at full float64 precision)."""
    pre, out = trace.pre_activation.tolist(), trace.output.tolist()
    steps = _steps(
        trace,
        per_cell={"padded": trace.padded.tolist()},
        per_channel={"in_channels": trace.in_channels.tolist(), "bias": trace.bias.tolist()},
        per_step={
            "products": trace.products.permute(0, 4, 5, 1, 2, 3).tolist(),
            "channel_sums": trace.channel_sums.permute(0, 2, 3, 1).tolist(),
            "sum": trace.sums.tolist(),
            "pre_activation": pre,
            "value": out,
        },
    )
    return {
        **_answer("conv2d", trace, steps),
        "padded_input": trace.padded_input.tolist(),
        "pre_activation": pre,
        "output": out,
    }


@gc_paused()
def conv_transpose_trace_body(trace: ConvTransposeTrace) -> dict[str, Any]:
    """The JSON body of a transposed conv2d trace: one scatter step per input cell."""
    steps = _steps(
        trace,
        per_cell={"cropped": trace.cropped.tolist()},
        per_channel={"in_channels": trace.in_channels.tolist()},
        per_step={
            "inputs": trace.inputs.permute(0, 2, 3, 1).tolist(),
            "contributions": trace.contributions.permute(0, 4, 5, 1, 2, 3).tolist(),
            "scatter": trace.scatter.permute(0, 3, 4, 1, 2).tolist(),
        },
    )
    return {
        **_answer("conv_transpose2d", trace, steps),
        "pre_activation": trace.pre_activation.tolist(),
        "output": trace.output.tolist(),
        "bias": trace.bias.tolist(),
    }


# --- /presets ---------------------------------------------------------------------------------


class KernelPresetOut(BaseModel):
    name: str
    values: list[list[float]]


class InputPresetOut(BaseModel):
    name: str
    channels: int
    values: list[list[list[float]]]


class PresetsResponse(BaseModel):
    kernels: list[KernelPresetOut]
    inputs: list[InputPresetOut]
