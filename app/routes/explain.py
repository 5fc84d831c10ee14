"""Why this prediction: CAMs and pixel attributions of a feature result, and occlusion jobs."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from app.deps import AppSettings
from app.errors import core_error_response
from app.explain_jobs import OcclusionJob, OcclusionJobs, get_occlusion_jobs
from app.feature_cache import FeatureCache, get_feature_cache
from app.limits import heavy_work
from app.schemas.common import finite_or_none
from app.schemas.explain import (
    ExplainIn,
    ExplainOut,
    LayerChoice,
    OcclusionIn,
    OcclusionOut,
    heatmap_url,
)
from app.settings import Settings
from app.unit_store import UnitStore, get_unit_store
from cnncore.errors import CNNCoreError
from cnncore.explain import (
    default_target_layer,
    explain,
    forward_macs,
    integrated_gradients,
    occlusion,
    occlusion_plan,
)
from cnncore.features import capture_layers

router = APIRouter(prefix="/api/explanations", tags=["explanations"])
GONE = "this feature result is gone from the server: send the picture again"


def _picture(store: UnitStore, cache: FeatureCache, result_id: str):
    """(model, preprocessed picture on the model's device, every layer's output shape)."""
    try:
        model, stored = store.model_of(cache, result_id)
    except KeyError:
        raise HTTPException(404, detail=GONE) from None
    picture = stored.maps.network_input  # exactly what the network was given
    if picture is None:
        raise HTTPException(404, detail=GONE)
    parameter = next(model.loaded.model.parameters(), None)
    if parameter is not None:
        picture = picture.to(parameter.device)
    kept = store.sources.get(result_id)
    if kept is not None and kept.activations is not None:
        shapes = {name: tuple(v.shape) for name, v in kept.activations.values.items()}
    else:
        shapes, _ = capture_layers(model.layers, picture, lambda _n, v: tuple(v.shape[1:]))
    return model, picture, shapes


def _explain(store, cache, body: ExplainIn, settings: Settings) -> ExplainOut:
    model, picture, shapes = _picture(store, cache, body.result)
    default = default_target_layer(model.layers, shapes)
    layer = body.layer or default
    found = explain(model.layers, picture, target=body.target, layer=layer)
    maps = dict(found.maps)
    if body.integrated_gradients:
        maps["integrated_gradients"] = integrated_gradients(
            model.layers, picture, found.target, steps=settings.explain_ig_steps
        )
    labels = model.loaded.weights.labels
    spatial = [LayerChoice(name=n, shape=list(shapes[n])) for n in model.layers.layer_names
               if len(shapes.get(n, ())) == 3 and max(shapes[n][1:]) > 1]  # fmt: skip
    return ExplainOut(
        layer=layer, layer_shape=list(found.layer_shape), default_layer=default, layers=spatial,
        target=found.target, label=labels[found.target] if labels else None,
        score=finite_or_none(found.score), probability=finite_or_none(found.probability),
        maps={k: heatmap_url(v) for k, v in maps.items()},
        size=list(picture.shape[-2:]),
    )  # fmt: skip


@router.post("", response_model=ExplainOut, dependencies=[Depends(heavy_work("explanations"))])
async def explanations(  # noqa: ANN201 (an ExplainOut, or the 422 of a core refusal)
    body: ExplainIn,
    settings: AppSettings,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    store: Annotated[UnitStore, Depends(get_unit_store)],
):
    """Grad-CAM, Grad-CAM++, LayerCAM and saliency (and integrated gradients on request) of a
    feature result's picture for a class (default: the top one) at a layer (default: the
    deepest layer with a spatial map), as heat maps the size of the picture."""
    try:
        return await run_in_threadpool(_explain, store, cache, body, settings)
    except CNNCoreError as exc:
        return core_error_response(exc)


def _job_out(job: OcclusionJob) -> OcclusionOut:
    values, url, largest = job.values, None, None
    if values is not None:
        largest = float(values.max())
        drops = np.clip(values, 0, None)
        url = heatmap_url(drops / largest if largest > 0 else drops)
    return OcclusionOut(id=job.id, state=job.state, done=job.done, total=job.total,
                        patch=job.patch, stride=job.stride, target=job.target, map=url,
                        largest_drop=largest)  # fmt: skip


def _start_occlusion(store, cache, jobs: OcclusionJobs, body: OcclusionIn, settings: Settings):
    model, picture, shapes = _picture(store, cache, body.result)
    height, width = picture.shape[-2:]
    plan = occlusion_plan(height, width, body.patch, body.stride)
    macs = forward_macs(model.layers, shapes) * (plan.windows + 1)
    if plan.windows > settings.occlusion_max_windows or macs > settings.occlusion_max_macs:
        limit = settings.occlusion_max_windows
        raise CNNCoreError(
            f"{plan.windows} patch positions ({macs:,} multiply-adds) is more work than this "
            f"server does for one occlusion: take a larger stride or patch", "stride",
            code="occlusion_too_much_work", ctx={"count": plan.windows, "limit": limit},
        )  # fmt: skip
    with torch.inference_mode():
        logits = capture_layers(model.layers, picture, lambda _n, _v: None)[1]
    classes = logits.shape[-1]
    target = int(logits[0].argmax()) if body.target is None else body.target
    if target >= classes:
        raise CNNCoreError(f"class {target} is not one of {classes}", "target",
                           code="unknown_class", ctx={"classes": classes})  # fmt: skip
    job = OcclusionJob(jobs.new_id(), plan.windows, body.patch, body.stride, target)

    def work(progress):  # noqa: ANN001, ANN202
        return occlusion(model.layers, picture, target, plan, batch=settings.occlusion_batch,
                         progress=progress)  # fmt: skip

    if jobs.start(job, work) is None:
        raise HTTPException(429, detail="occlusions are already running: try again shortly",
                            headers={"Retry-After": str(settings.retry_after_seconds)})  # fmt: skip
    return _job_out(job)


@router.post("/occlusion", response_model=OcclusionOut, status_code=202)
async def start_occlusion(  # noqa: ANN201
    body: OcclusionIn,
    settings: AppSettings,
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
    store: Annotated[UnitStore, Depends(get_unit_store)],
    jobs: Annotated[OcclusionJobs, Depends(get_occlusion_jobs)],
):
    """Start sliding a patch over the picture; poll the answer's id for progress and the map."""
    try:
        return await run_in_threadpool(_start_occlusion, store, cache, jobs, body, settings)
    except CNNCoreError as exc:
        return core_error_response(exc)


JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


def _job(jobs: OcclusionJobs, job_id: str) -> OcclusionJob:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, detail="no such occlusion (finished ones are kept a while)")
    return job


@router.get("/occlusion/{job_id}", response_model=OcclusionOut)
def occlusion_state(
    job_id: JobId, jobs: Annotated[OcclusionJobs, Depends(get_occlusion_jobs)]
) -> OcclusionOut:
    """Progress of an occlusion, with its map once done."""
    return _job_out(_job(jobs, job_id))


@router.delete("/occlusion/{job_id}", response_model=OcclusionOut)
def stop_occlusion(
    job_id: JobId, jobs: Annotated[OcclusionJobs, Depends(get_occlusion_jobs)]
) -> OcclusionOut:
    """Stop an occlusion after its current batch."""
    job = _job(jobs, job_id)
    job.stop.set()
    return _job_out(job)
