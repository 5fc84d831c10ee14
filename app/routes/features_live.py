"""Feature maps while a picture is drawn: one round trip per update, for a small model.

`POST /api/features/live` takes the same form as `POST /api/features` and gives the same
answer (the same result id and PNG URLs, computed by the same code), plus `inline`: the PNGs
the page shows next — every layer's thumbnail, the open layer's atlas and its picked channel
in colour and in grey — as data URLs holding the very bytes the URLs serve. So a drawing pad's
update costs one request instead of a dozen (each a round trip on a loaded server).

Only for a small model (its input at most `feature_live_max_input_pixels`, learned mode): its
forward pass is a few milliseconds, so these requests count against the live group's slots and
quota (`live_work`, like POST /api/predict) and a student drawing for a minute is not refused by
the heavy quota. Like a live prediction they run on the live threads (app/live_pool.py, one torch
thread each), not in /api/features' `forward_slots`: a stroke never waits behind another
student's VGG-16 maps, and the pool's `live_workers` threads bound how many small pictures and
activations exist at once. A bigger model is refused (422 naming `model`; the page posts to
/api/features instead). When the pictures would be over `feature_live_inline_bytes` together,
`inline` is null and the page fetches them by URL as usual.
"""

from __future__ import annotations

import asyncio
import base64
from contextlib import nullcontext
from functools import partial
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from app.deps import AppSettings
from app.feature_cache import FeatureCache, get_feature_cache
from app.limits import live_work
from app.live_pool import live_pool
from app.routes.features import _FORM_SCHEMA, _extract
from app.schemas.features import FeaturesForm, FeaturesOut, LayerOut
from app.settings import Settings
from app.unit_store import UnitStore, get_unit_store
from app.uploads import read_picture_form, refusal
from app.weights_choice import CheckpointOf, checkpoints
from cnncore.models import get_model_info

router = APIRouter(prefix="/api/features", tags=["features"])

# The sizes the page asks for (static/js/feature_layers.js THUMB_SIDE, feature_detail.js
# ATLAS_MAX_SIDE): the inline pictures are the ones its URLs would fetch.
THUMB_SIDE = 160
ATLAS_MAX_SIDE = 768


class InlineOut(BaseModel):
    """The pictures of one update as `data:image/png;base64,…` URLs."""

    thumbs: dict[str, str]  # layer name → thumbnail (?colormap=C&max_side=160)
    layer: str  # the open layer: the one asked for, else the first
    channel: int  # its picked channel: the one asked for, else 0 when out of range
    atlas: str  # ?colormap=C&max_side=768
    channel_colour: str  # ?channel=N&colormap=C
    channel_grey: str  # ?channel=N&colormap=gray (its levels give the values back)
    nbytes: int  # PNG bytes in all, before base64


class FeaturesLiveOut(FeaturesOut):
    inline: InlineOut | None  # None: over `feature_live_inline_bytes`; fetch the URLs


def _small_enough(form: FeaturesForm, settings: Settings) -> None:
    """Refuse what is not a small learned model before any work (the live quota is for
    bounded work)."""
    shape = get_model_info(form.model).default_input
    limit = settings.feature_live_max_input_pixels
    if form.mode != "learned" or shape.height * shape.width > limit:
        message = f"live maps are for learned models of at most {limit:,} input pixels"
        raise refusal(422, "model", message + ": post to /api/features", "too_large", limit=limit)


class _OverBudget(Exception):
    """The inline pictures went over `feature_live_inline_bytes`: none are sent."""


def _tiles(layer: LayerOut) -> int:
    return 1 if layer.units else layer.channels_shown


def _inline(
    cache: FeatureCache, answer: FeaturesOut, layer: str | None, channel: int, limit: int
) -> InlineOut | None:
    """The update's pictures, from `cache.png` (the same bytes its URLs serve), or None as
    soon as they are over `limit` bytes together."""
    pngs: list[bytes] = []

    def take(*key) -> str:
        png = cache.png(answer.id, *key)
        pngs.append(png)
        if sum(map(len, pngs)) > limit:
            raise _OverBudget
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    if not answer.layers:
        return None
    colormap = answer.colormap
    opened = next((item for item in answer.layers if item.name == layer), answer.layers[0])
    channel = channel if channel < _tiles(opened) else 0
    try:
        thumbs = {item.name: take(item.name, colormap, THUMB_SIDE, None) for item in answer.layers}
        return InlineOut(
            thumbs=thumbs,
            layer=opened.name,
            channel=channel,
            atlas=take(opened.name, colormap, ATLAS_MAX_SIDE, None),
            channel_colour=take(opened.name, colormap, None, channel),
            channel_grey=take(opened.name, "gray", None, channel),
            nbytes=sum(map(len, pngs)),
        )
    except _OverBudget:
        return None


@router.post(
    "/live",
    response_model=FeaturesLiveOut,
    openapi_extra=_FORM_SCHEMA,
    dependencies=[Depends(live_work())],
)
async def live_features(
    request: Request,
    after: BackgroundTasks,
    settings: AppSettings,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    checkpoint_of: Annotated[CheckpointOf, Depends(checkpoints)],
    units: Annotated[UnitStore, Depends(get_unit_store)],
    layer: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[int, Query(ge=0, le=4095)] = 0,
) -> FeaturesLiveOut:
    """`POST /api/features`'s answer for a small model, with the pictures the page shows
    inline: every layer's thumbnail and open layer `layer`'s atlas and channel `channel`."""
    form, data = await read_picture_form(request, settings, FeaturesForm)
    _small_enough(form, settings)
    work = partial(
        _extract, cache, form, data, settings, checkpoint_of, units, nullcontext(), after=after
    )
    answer = await asyncio.get_running_loop().run_in_executor(live_pool(), work)
    inline = await run_in_threadpool(
        _inline, cache, answer, layer, channel, settings.feature_live_inline_bytes
    )
    return FeaturesLiveOut(**answer.model_dump(), inline=inline)
