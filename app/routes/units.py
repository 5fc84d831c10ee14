"""A unit of a feature result written out: how its number came from the previous layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from app.deps import AppSettings
from app.errors import core_error_response
from app.feature_cache import FeatureCache, get_feature_cache
from app.routes.features import ResultId
from app.schemas.unit import UnitOut, UnitQuery
from app.settings import Settings
from app.unit_store import UnitStore, get_unit_store
from cnncore.errors import CNNCoreError
from cnncore.unit import unit_computation

router = APIRouter(prefix="/api/features", tags=["units"])


def _unit(
    store: UnitStore, cache: FeatureCache, result_id: str, query: UnitQuery, settings: Settings
) -> UnitOut:
    try:
        model, activations = store.layers_and_activations(cache, result_id, query.layer)
    except KeyError:
        raise HTTPException(
            404, detail="this feature result is gone from the server: send the picture again"
        ) from None
    unit = unit_computation(
        model.layers, activations, query.layer, query.channel, query.y, query.x,
        max_channels=settings.unit_max_channels, max_terms=settings.unit_max_terms,
    )  # fmt: skip
    return UnitOut.of(unit)


@router.get("/{result_id}/unit", response_model=UnitOut)
async def unit(  # noqa: ANN201 (a UnitOut, or the 422 of a core refusal)
    result_id: ResultId,
    query: Annotated[UnitQuery, Query()],
    settings: AppSettings,
    store: Annotated[UnitStore, Depends(get_unit_store)],
    cache: Annotated[FeatureCache, Depends(get_feature_cache)],
):
    """One unit (layer, channel, y, x) of a learned feature result: window, kernel, products,
    sums, bias, batch norm, activation, pooling, residual, concat, linear terms and softmax."""
    try:
        return await run_in_threadpool(_unit, store, cache, result_id, query, settings)
    except CNNCoreError as exc:
        return core_error_response(exc, "query")
