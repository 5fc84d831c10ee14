"""Live prediction: one small picture (a webcam frame, a drawing) → every class's probability.

Lean on purpose, as it is called many times a second by one page: the body is the picture
itself (`Content-Type: image/png`, `image/jpeg` or `image/webp`; no multipart to parse), the
model is the one /api/features keeps built (`FeatureCache`: bundled weights, or a run's newest
checkpoint), and the answer is two short lists. The pages send one frame at a time and drop
the frames that come while it is in flight; the server holds a client to
`client_live_requests` in flight and `client_live_per_minute` (app/limits.py `live_work`), and
runs the pass on its own threads (app/live_pool.py: one torch thread each, `live_workers` of
them), not behind the feature requests' slots: a student's bars keep moving while another
student's VGG maps are computed.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app.deps import AppSettings
from app.errors import core_error_response
from app.feature_cache import FeatureCache, get_feature_cache
from app.limits import live_work
from app.live_pool import live_pool
from app.schemas.predict import ClassProbabilitiesOut
from app.schemas.runs import RUN_ID_PATTERN
from app.settings import Settings
from app.uploads import refusal
from app.weights_choice import CheckpointOf, checkpoints, run_checkpoint
from cnncore.errors import CNNCoreError
from cnncore.images import decode_image
from cnncore.live_prediction import class_probabilities
from cnncore.models import get_model_info

router = APIRouter(prefix="/api/predict", tags=["predict"])

PICTURE_TYPES = ("image/png", "image/jpeg", "image/webp")
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            kind: {"schema": {"type": "string", "format": "binary"}} for kind in PICTURE_TYPES
        },  # fmt: skip
    }
}
QUERY_FIELDS = ("model", "run")  # refusals naming these point at the query, not the body
ModelName = Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]
RunId = Annotated[str | None, Query(pattern=RUN_ID_PATTERN)]


async def _picture(request: Request, limit: int) -> bytes:
    """The body, within `limit` bytes: the declared length is checked before reading."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in PICTURE_TYPES:
        raise refusal(415, "image", f"send the picture as one of {', '.join(PICTURE_TYPES)}",
                      "unsupported_media_type")  # fmt: skip
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise refusal(411, "image", "send the picture with a Content-Length header",
                      "length_required")  # fmt: skip
    if int(declared) > limit:
        raise refusal(413, "image", f"the picture is over {limit:,} bytes", "too_large",
                      limit=limit)  # fmt: skip
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:  # a body longer than it said
            raise refusal(413, "image", f"the picture is over {limit:,} bytes", "too_large",
                          limit=limit)  # fmt: skip
    return bytes(data)


def _predict(
    cache: FeatureCache,
    data: bytes,
    model: str,
    run: str | None,
    settings: Settings,
    checkpoint_of: CheckpointOf,
) -> ClassProbabilitiesOut:
    get_model_info(model)  # an unknown name is refused before any work
    image = decode_image(
        data,
        max_bytes=settings.live_max_picture_bytes,
        max_pixels=settings.max_image_pixels,
        max_aspect_ratio=settings.max_image_aspect_ratio,
    )
    built = (cache.model(model) if run is None
             else cache.run_model(run_checkpoint(run, checkpoint_of), model))  # fmt: skip
    found = class_probabilities(built.loaded, image, settings.max_resized_pixels)
    return ClassProbabilitiesOut.of(found, model, run)


@router.post(
    "",
    response_model=ClassProbabilitiesOut,
    openapi_extra=_BODY,
    dependencies=[Depends(live_work())],
)
async def predict(
    request: Request,
    model: ModelName,
    settings: AppSettings,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    checkpoint_of: Annotated[CheckpointOf, Depends(checkpoints)],
    run: RunId = None,
) -> ClassProbabilitiesOut | JSONResponse:
    """Every class's probability for the picture in the body, through `model`'s bundled
    weights or training run `run`'s newest checkpoint (the run fixes the model)."""
    data = await _picture(request, settings.live_max_picture_bytes)
    try:
        work = partial(_predict, cache, data, model, run, settings, checkpoint_of)
        return await asyncio.get_running_loop().run_in_executor(live_pool(), work)
    except CNNCoreError as exc:
        if exc.field not in QUERY_FIELDS:
            raise  # the picture's refusals name the body's `image`
        return core_error_response(exc, "query")
