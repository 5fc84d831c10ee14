"""The pooling explorer's API: a whole pooling trace, with gradient routing on request."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.deps import settings_dep
from app.json_guard import body_class
from app.schemas.common import json_response
from app.schemas.pool import PoolTraceRequest, PoolTraceResponse, pool_trace_body
from app.settings import Settings
from cnncore.pooling import pool_backward, trace_pool2d

router = APIRouter(prefix="/api/pool", tags=["pool"])


@router.post("/trace", response_model=PoolTraceResponse,
              openapi_extra=body_class("arrays"))  # fmt: skip
def trace(body: PoolTraceRequest, settings: Annotated[Settings, Depends(settings_dep)]) -> Response:
    """Every window of a max, average, L2 or global average pooling, and where gradients go."""
    body.check_limits(settings)
    traced = trace_pool2d(
        body.input, body.kind, body.kernel_size, body.stride, body.padding,
        ceil_mode=body.ceil_mode, count_include_pad=body.count_include_pad,
        max_cells=settings.max_trace_products,
    )
    routed = None if body.grad_output is None else pool_backward(traced, body.grad_output)
    return json_response(pool_trace_body(traced, routed))  # not validated: see json_response
