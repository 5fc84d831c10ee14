"""The convolution explorer's API: output-size arithmetic, step traces and presets."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.deps import settings_dep
from app.json_guard import body_class
from app.schemas.common import json_response
from app.schemas.conv import (
    InputPresetOut,
    KernelPresetOut,
    PresetsResponse,
    ShapeRequest,
    ShapeResponse,
    TraceRequest,
    TraceResponse,
    conv_trace_body,
    conv_transpose_trace_body,
)
from app.settings import Settings
from cnncore.arithmetic import conv2d_shape
from cnncore.presets import preset_kernels, sample_inputs
from cnncore.trace import trace_conv2d, trace_conv_transpose2d

router = APIRouter(prefix="/api/conv", tags=["conv"])


@router.post("/shape", response_model=ShapeResponse)
def shape(body: ShapeRequest) -> ShapeResponse:
    """Output size, parameters, MACs and the substituted formulas of one (transposed) conv layer."""
    layer = body.model_dump(exclude={"channels", "height", "width", "kernel_size"})
    return ShapeResponse.of(
        conv2d_shape(body.channels, body.height, body.width, body.kernel_size, **layer)
    )


@router.post("/trace", response_model=TraceResponse, openapi_extra=body_class("arrays"))
def trace(body: TraceRequest, settings: Annotated[Settings, Depends(settings_dep)]) -> Response:
    """Every step of a conv2d (window, products, sums) or transposed conv2d (scatters)."""
    body.check_limits(settings)
    options = body.model_dump(include={"stride", "padding", "dilation", "groups", "activation"})
    budget = settings.max_trace_products
    if body.transposed:
        scattered = trace_conv_transpose2d(
            body.input,
            body.kernels,
            body.bias,
            output_padding=body.output_padding,
            max_products=budget,
            **options,
        )
        answer = conv_transpose_trace_body(scattered)
    else:
        answer = conv_trace_body(
            trace_conv2d(body.input, body.kernels, body.bias, max_products=budget, **options)
        )
    return json_response(answer)  # not validated against TraceResponse: see json_response


@router.get("/presets", response_model=PresetsResponse)
def presets() -> PresetsResponse:
    """Named 3×3 kernels (edges, Sobel, blurs, ...) and small sample inputs (digit, shapes, RGB)."""
    return PresetsResponse(
        kernels=[KernelPresetOut(name=k.name, values=k.values.tolist()) for k in preset_kernels()],
        inputs=[
            InputPresetOut(name=i.name, channels=i.channels, values=i.values.tolist())
            for i in sample_inputs()
        ],
    )
