"""Feature maps of a picture through a zoo model: one POST, then its PNGs by name."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import partial
from threading import Event
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from app.deps import AppSettings
from app.feature_cache import FeatureCache, get_feature_cache
from app.limits import heavy_work, unless_client_leaves
from app.schemas.features import (
    Colormap,
    FamiliarityOut,
    FeaturesForm,
    FeaturesOut,
    SampleOut,
)
from app.settings import Settings
from app.unit_store import UnitStore, get_unit_store
from app.uploads import chosen_picture, picture_form_schema, read_picture_form
from app.weights_choice import CheckpointOf, checkpoints, run_checkpoint
from cnncore.colormaps import COLORMAPS, lut_hex
from cnncore.errors import CNNCoreError
from cnncore.familiarity import familiarity
from cnncore.features import handcrafted_feature_maps, learned_feature_maps
from cnncore.images import SAMPLE_IMAGES, encode_png, sample_image
from cnncore.models import get_model_info
from cnncore.presets import preset_kernels

router = APIRouter(prefix="/api/features", tags=["features"])

PNG_HEADERS = {"Cache-Control": "private, max-age=3600, immutable"}
ResultId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]

_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": picture_form_schema(FeaturesForm, ["model"])}
        },
    }
}


def _model(cache: FeatureCache, form: FeaturesForm, checkpoint_of: CheckpointOf) -> tuple:
    """The model the maps come from and what identifies its weights in the result key:
    the bundled ones (None), or the run and its checkpoint's version."""
    if form.run is None:
        return cache.model(form.model), None
    found = run_checkpoint(form.run, checkpoint_of)
    return cache.run_model(found, form.model), (found.run, *found.version)


def _extract(
    cache: FeatureCache,
    form: FeaturesForm,
    data: bytes | None,
    settings: Settings,
    checkpoint_of: CheckpointOf,
    units: UnitStore,
    slots: AbstractContextManager | None = None,
    gone: Event | None = None,
    *,
    after: BackgroundTasks | None = None,
) -> FeaturesOut | None:
    """Decode, then compute (or reuse) the maps; runs in a worker thread, holding one of the
    cache's `forward_slots` from decoding to the last map (or of `slots`: the live route's
    small work is bounded by its pool's threads instead, and queues behind no VGG-16). None,
    nothing computed, when the client left (`gone`) while it waited for a slot.
    The answer needs the maps' ranges only: fresh maps' levels are made once it is sent
    (`after`), or at once in the background when there is no answer to wait for."""
    with cache.forward_slots if slots is None else slots:
        if gone is not None and gone.is_set():
            return None
        image = chosen_picture(form.sample, data, settings)
        get_model_info(form.model)  # an unknown name is refused before any work
        if form.run is not None and form.mode != "learned":
            raise CNNCoreError("a run's weights are learned filters: choose learned mode", "run")
        weights, source, model, floats = None, None, None, None
        if form.mode == "learned":
            model, source = _model(cache, form, checkpoint_of)
            weights = model.loaded.weights
            floats = units.collector()  # float copies for a unit's computation

            def compute():
                return learned_feature_maps(
                    model.loaded,
                    model.layers,
                    image,
                    normalise=form.normalise,
                    max_channels=settings.feature_max_channels,
                    also_keep=floats,
                    max_resized_pixels=settings.max_resized_pixels,
                    deferred=cache.deferred,
                )
        else:

            def compute():
                return handcrafted_feature_maps(
                    form.model,
                    image,
                    preset_kernels(),
                    normalise=form.normalise,
                    max_resized_pixels=settings.max_resized_pixels,
                )

        options = (form.model, form.mode, form.normalise, settings.feature_max_channels, source)
        stored, cached = cache.result(image, options, form.colormap, form.sample, compute)
        if not cached and (after is None or (gone is not None and gone.is_set())):
            cache.settle_soon(stored.maps)  # no answer will be sent to wait for
        elif not cached:
            after.add_task(cache.settle_soon, stored.maps)
        if model is not None:
            units.remember(stored.id, model, None if cached else floats.activations(
                model.layers))  # fmt: skip
        base = f"{router.prefix}/{stored.id}"
        answer = FeaturesOut.of(
            stored.id,
            stored.maps,
            image,
            form.sample,
            weights,
            form.colormap,
            cached,
            lambda name: f"{base}/{name}.png",
            form.run,
        )
        if form.mode == "learned" and form.run is None:
            # from the input the maps were computed from: one small pass to the probe layers
            found = familiarity(model.loaded, stored.maps.network_input)
            answer.familiarity = FamiliarityOut.of(found)
        return answer


@router.post(
    "",
    response_model=FeaturesOut,
    openapi_extra=_FORM_SCHEMA,
    dependencies=[Depends(heavy_work("features"))],
)
async def extract_features(
    request: Request,
    after: BackgroundTasks,
    settings: AppSettings,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    checkpoint_of: Annotated[CheckpointOf, Depends(checkpoints)],
    units: Annotated[UnitStore, Depends(get_unit_store)],
) -> FeaturesOut:
    """Run a picture (upload or sample) through a model, with its bundled weights or a
    training run's newest checkpoint (`run`); every layer's maps as PNG URLs."""
    form, data = await read_picture_form(request, settings, FeaturesForm)
    work = partial(_extract, cache, form, data, settings, checkpoint_of, units, None, after=after)
    return await unless_client_leaves(request, work)  # work(gone)


@router.get("/samples", response_model=list[SampleOut])
def samples() -> list[SampleOut]:
    """The built-in pictures: scikit-learn's two photos and generated patterns."""
    return [
        SampleOut(
            name=name,
            width=sample_image(name).width,
            height=sample_image(name).height,
            url=f"{router.prefix}/samples/{name}.png",
        )
        for name in SAMPLE_IMAGES
    ]


@router.get("/samples/{name}.png", response_class=Response)
def sample_png(name: str) -> Response:
    """One built-in picture as PNG."""
    if name not in SAMPLE_IMAGES:
        raise HTTPException(404, detail=f"no sample called {name!r}")
    return Response(
        encode_png(sample_image(name).rgb, 6), media_type="image/png", headers=PNG_HEADERS
    )


@router.get("/colormaps", response_model=dict[str, list[str]])
def colormaps() -> dict[str, list[str]]:
    """Each colormap's 256 colours (level 0 first), for legends and reading values back."""
    return {name: lut_hex(name) for name in COLORMAPS}


@router.get("/{result_id}/{name}.png", response_class=Response)
def picture_png(
    result_id: ResultId,
    name: Annotated[str, Path(max_length=200)],
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    colormap: Annotated[Colormap | None, Query()] = None,
    max_side: Annotated[int | None, Query(ge=16, le=4096)] = None,
    channel: Annotated[int | None, Query(ge=0, le=4095)] = None,
) -> Response:
    """One picture of a result: a layer's atlas, the filters or a preprocessing step.

    `colormap` recolours a layer without a new forward pass; `max_side` gives a thumbnail;
    `channel` one map of a layer at full size (tile order of the atlas).
    """
    try:
        png = cache.png(result_id, name, colormap, max_side, channel)
    except KeyError as exc:
        raise HTTPException(404, detail="no such picture (results expire; post again)") from exc
    return Response(png, media_type="image/png", headers=PNG_HEADERS)
