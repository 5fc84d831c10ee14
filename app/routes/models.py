"""The model zoo's API: the catalogue, per-layer summaries and the curriculum's cost comparisons."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from app.deps import AppSettings
from app.errors import core_error_response
from app.schemas.models import CostComparisonOut, ModelOut, SummaryOut, SummaryQuery
from cnncore.errors import CNNCoreError
from cnncore.inspect import (
    curriculum_cost_comparisons,
    parameter_count,
    summarize_blocks,
    summarize_model,
)
from cnncore.models import UnknownModelError, get_model_info, list_models
from cnncore.receptive_field import model_field_graph, summary_fields

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=list[ModelOut])
def catalogue() -> list[ModelOut]:
    """Every model in the zoo: title, family, paper, default input and parameter count."""
    return [ModelOut.of(get_model_info(name), parameter_count(name)) for name in list_models()]


@router.get("/costs", response_model=list[CostComparisonOut])
def costs() -> list[CostComparisonOut]:
    """A 5×5 conv vs a 1×1 bottleneck (Inception 3a), a 3×3 conv vs depthwise-separable."""
    return [CostComparisonOut.of(c) for c in curriculum_cost_comparisons()]


@router.get("/{name}/summary", response_model=SummaryOut)
def summary(
    name: str,
    query: Annotated[SummaryQuery, Query()],
    settings: AppSettings,
) -> SummaryOut | JSONResponse:
    """Per layer: name, type, output shape, params, MACs, receptive field; totals; blocks."""
    try:
        info = get_model_info(name)
    except UnknownModelError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    shape = (query.channels, query.height, query.width, query.num_classes)
    try:
        query.check_limits(settings)
        result = summarize_model(name, *shape)
        # every zoo model traces with torch.fx (tests/cnncore/test_models.py), so an input the
        # summary accepts also gives fields and blocks
        fields = summary_fields(result, model_field_graph(name, *shape))
        blocks = summarize_blocks(name, *shape)
    except CNNCoreError as exc:
        return core_error_response(exc, "query")
    num_classes = None if info.num_classes is None else query.num_classes or info.num_classes
    return SummaryOut.of(name, num_classes, result, fields, blocks)
