"""Receptive fields: a unit's box and every layer's field (theoretical, Distill 2019), effective
fields and depth sweeps (Luo et al. 2016)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse

from app.deps import settings_dep
from app.errors import core_error_response
from app.limits import heavy_work
from app.schemas.receptive_field import (
    EffectiveIn,
    EffectiveOut,
    LayerFieldOut,
    LayerFieldsOut,
    SweepIn,
    SweepOut,
    UnitFieldOut,
    UnitQuery,
)
from app.schemas.receptive_field import InputShapeOut as InputOut
from app.settings import Settings
from cnncore.effective_rf import depth_sweep, model_effective_field, stack_effective_field
from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError
from cnncore.receptive_field import FieldGraph, model_field_graph

router = APIRouter(prefix="/api", tags=["receptive fields"])
SettingsDep = Annotated[Settings, Depends(settings_dep)]


def _graph(name: str, query: UnitQuery, settings: Settings) -> FieldGraph:
    """The model's traced fields; an unknown name is a 404 (it is the path)."""
    query.check_limits(settings)
    try:
        return model_field_graph(name, query.channels, query.height, query.width, query.num_classes)
    except UnknownModelError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc


@router.get("/models/{name}/receptive-field", response_model=UnitFieldOut)
def unit_field(
    name: str, query: Annotated[UnitQuery, Query()], settings: SettingsDep
) -> UnitFieldOut | JSONResponse:
    """The input box of unit (y, x) of a layer (default: the deepest feature map's centre)."""
    try:
        graph = _graph(name, query, settings)
        unit = graph.unit(query.layer or graph.default_layer(), query.y, query.x)
    except CNNCoreError as exc:
        return core_error_response(exc, "query")
    return UnitFieldOut.of_unit(unit, graph.input_shape)


@router.get("/models/{name}/receptive-fields", response_model=LayerFieldsOut)
def layer_fields(
    name: str, query: Annotated[UnitQuery, Query()], settings: SettingsDep
) -> LayerFieldsOut | JSONResponse:
    """Every layer's receptive field size, jump, start and effective padding, in order."""
    try:
        graph = _graph(name, query, settings)
    except CNNCoreError as exc:
        return core_error_response(exc, "query")
    channels, height, width = graph.input_shape
    return LayerFieldsOut(
        model=name,
        input=InputOut(channels=channels, height=height, width=width),
        layers=[LayerFieldOut.of(f) for f in graph.fields.values()],
    )


@router.post(
    "/receptive-field/effective",
    response_model=EffectiveOut,
    dependencies=[Depends(heavy_work("receptive_field"))],
)
def effective_field(body: EffectiveIn, settings: SettingsDep) -> EffectiveOut:
    """ERF of a unit averaged over random inputs (one batched backward), its Gaussian fit and
    the share of the theoretical field that holds 95% of the gradient mass."""
    body.check_limits(settings)
    if body.stack is not None:
        height, width = body.height or 64, body.width or 64
        erf = stack_effective_field(
            body.stack.config(),
            height,
            width,
            body.y,
            body.x,
            samples=body.samples,
            seed=body.seed,
            max_macs=settings.max_erf_macs,
        )
        return EffectiveOut.of("stack", body.stack.weights, erf)
    assert body.model is not None
    result = model_effective_field(
        body.model,
        body.height,
        body.width,
        body.layer,
        body.y,
        body.x,
        samples=body.samples,
        seed=body.seed,
        weights=body.weights,
        max_macs=settings.max_erf_macs,
    )
    return EffectiveOut.of(result.model, result.weights, result.field)


@router.post(
    "/receptive-field/sweep",
    response_model=SweepOut,
    dependencies=[Depends(heavy_work("receptive_field"))],
)
def sweep(body: SweepIn, settings: SettingsDep) -> SweepOut:
    """σ of the centre unit's ERF and the theoretical size after 1..depth layers of a stack."""
    body.check_limits(settings)
    result = depth_sweep(
        body.stack.config(),
        body.size,
        samples=body.samples,
        seed=body.seed,
        max_macs=settings.max_erf_macs,
    )
    return SweepOut.of(body, result)
