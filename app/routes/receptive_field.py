"""Receptive fields: a unit's box and every layer's field (theoretical, Distill 2019), effective
fields and depth sweeps (Luo et al. 2016)."""

from functools import partial
from threading import Event
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.deps import settings_dep
from app.errors import core_error_response
from app.feature_cache import FeatureCache, get_feature_cache
from app.limits import heavy_work, unless_client_leaves
from app.schemas.receptive_field import (
    EffectiveIn,
    EffectiveOut,
    EffectivePictureForm,
    LayerFieldOut,
    LayerFieldsOut,
    SweepIn,
    SweepOut,
    UnitFieldOut,
    UnitQuery,
)
from app.schemas.receptive_field import InputShapeOut as InputOut
from app.settings import Settings
from app.uploads import chosen_picture, picture_form_schema, read_picture_form
from app.weights_choice import CheckpointOf, checkpoints, run_checkpoint, run_weights
from cnncore.effective_rf import depth_sweep, model_effective_field, stack_effective_field
from cnncore.effective_rf_picture import initialised_model, picture_effective_field
from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError, get_model_info
from cnncore.receptive_field import FieldGraph, model_field_graph
from cnncore.weights import LoadedModel

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
    try:
        default = UnitFieldOut.of_unit(graph.unit(graph.default_layer()), graph.input_shape)
    except CNNCoreError:  # no layer has a feature map (an MLP)
        default = None
    return LayerFieldsOut(
        model=name,
        input=InputOut(channels=channels, height=height, width=width),
        layers=[LayerFieldOut.of(f) for f in graph.fields.values()],
        default_unit=default,
    )


def _on_random_inputs(body: EffectiveIn, settings: Settings, gone: Event) -> EffectiveOut | None:
    """Luo et al.'s ERF: averaged over random inputs, for a zoo model or a conv stack (None,
    nothing computed, when the client has already gone)."""
    body.check_limits(settings)
    if gone.is_set():
        return None
    if body.stack is not None:
        erf = stack_effective_field(
            body.stack.config(),
            body.height,
            body.width,
            body.y,
            body.x,
            samples=body.samples,
            seed=body.seed,
            max_macs=settings.max_erf_macs,
            max_values=settings.max_erf_values,
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
        weights_dir=settings.weights_dir,
    )
    return EffectiveOut.of(result.model, result.weights, result.field)


def _weights_for(
    form: EffectivePictureForm, cache: FeatureCache, checkpoint_of: CheckpointOf
) -> LoadedModel:
    get_model_info(form.model)  # an unknown name is refused before any work
    if form.run is not None:
        return run_weights(run_checkpoint(form.run, checkpoint_of), form.model)
    if form.weights == "trained":
        return cache.model(form.model).loaded  # the very model /features shows
    return initialised_model(form.model, form.seed)


def _on_picture(
    form: EffectivePictureForm,
    data: bytes | None,
    settings: Settings,
    cache: FeatureCache,
    checkpoint_of: CheckpointOf,
    gone: Event,
) -> EffectiveOut | None:
    """The ERF of one unit on the user's picture (or a sample); runs in a worker thread,
    holding one of the slots /features decodes and runs its forward passes in (None, nothing
    computed, when the client left while it waited for one)."""
    with cache.forward_slots:
        if gone.is_set():
            return None
        image = chosen_picture(form.sample, data, settings)
        loaded = _weights_for(form, cache, checkpoint_of)
        result = picture_effective_field(
            loaded,
            image,
            form.layer,
            form.y,
            form.x,
            max_macs=settings.max_erf_macs,
            max_resized_pixels=settings.max_resized_pixels,
        )
        return EffectiveOut.of_picture(result)


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _json_body_schema() -> dict:
    """EffectiveIn's schema with its nested model (StackIn) referenced among the components,
    where SweepIn already puts it."""
    schema = EffectiveIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


_EFFECTIVE_BODIES = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _json_body_schema()},
            "multipart/form-data": {"schema": picture_form_schema(EffectivePictureForm, ["model"])},
        },
    }
}


@router.post(
    "/receptive-field/effective",
    response_model=EffectiveOut,
    openapi_extra=_EFFECTIVE_BODIES,
    dependencies=[Depends(heavy_work("receptive_field"))],
)
async def effective_field(
    request: Request,
    settings: SettingsDep,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    checkpoint_of: Annotated[CheckpointOf, Depends(checkpoints)],
) -> EffectiveOut:
    """ERF of a unit and its Gaussian fit, with the share of the theoretical field that holds
    95% of the gradient mass. JSON: averaged over random inputs (one batched backward).
    Multipart: on the user's picture or a sample, with its map of the unit's layer."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(FORM_TYPES):  # a form without a file part may come urlencoded
        form, data = await read_picture_form(request, settings, EffectivePictureForm, 10)
        work = partial(_on_picture, form, data, settings, cache, checkpoint_of)
        return await unless_client_leaves(request, work)
    try:
        body = EffectiveIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    return await unless_client_leaves(request, partial(_on_random_inputs, body, settings))


@router.post(
    "/receptive-field/sweep",
    response_model=SweepOut,
    dependencies=[Depends(heavy_work("receptive_field"))],
)
async def sweep(body: SweepIn, settings: SettingsDep, request: Request) -> SweepOut:
    """σ of the centre unit's ERF and the theoretical size after 1..depth layers of a stack."""
    body.check_limits(settings)

    def work(gone: Event) -> SweepOut | None:
        if gone.is_set():
            return None
        result = depth_sweep(
            body.stack.config(),
            body.size,
            samples=body.samples,
            seed=body.seed,
            max_macs=settings.max_erf_macs,
            max_values=settings.max_erf_values,
        )
        return SweepOut.of(body, result)

    return await unless_client_leaves(request, work)
