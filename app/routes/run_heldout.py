"""A run's held-out pictures: counts per class, per-class accuracy, the confusion matrix of its
newest checkpoint, and the pictures one cell counts with their predictions (`app.runs.heldout`,
computed in `cnncore.heldout`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response

from app.runs.heldout import HeldOutRun, HeldOutRuns, get_held_out_runs
from app.runs.manager import RunError, RunManager, get_run_manager
from app.schemas.runs import RUN_ID_PATTERN, HeldOutOut, HeldOutPicture
from cnncore.errors import CNNCoreError

router = APIRouter(prefix="/api/runs", tags=["runs"])

Manager = Annotated[RunManager, Depends(get_run_manager)]
Runs = Annotated[HeldOutRuns, Depends(get_held_out_runs)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN)]
ClassIndex = Annotated[int | None, Query(ge=0, le=999)]


def _held_out(manager: RunManager, runs: HeldOutRuns, run_id: str) -> HeldOutRun:
    try:
        return runs.get(manager.checkpoint_for_run(run_id))
    except RunError as exc:
        raise HTTPException(exc.status_code, detail=str(exc)) from exc
    except LookupError as exc:  # the run, or its checkpoint, does not exist (yet)
        raise HTTPException(404, detail=str(exc.args[0] if exc.args else exc)) from exc


def _field(name: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", name], "msg": message,
                                       "type": "value_error"}])  # fmt: skip


@router.get("/{run_id}/heldout", response_model=HeldOutOut)
def held_out(run_id: RunId, manager: Manager, runs: Runs, true: ClassIndex = None,
             predicted: ClassIndex = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> HeldOutOut:  # fmt: skip
    """The held-out split and the newest checkpoint's predictions; with `true` and
    `predicted`, the pictures of that confusion-matrix cell (at most `limit`)."""
    try:
        found = _held_out(manager, runs, run_id)
    except CNNCoreError as exc:
        raise _field("run_id", str(exc)) from exc
    held = found.held_out
    classes = len(held.class_names)
    cell, pictures, total = None, [], 0
    if (true is None) != (predicted is None):
        raise _field("predicted" if predicted is None else "true",
                     "a cell needs both its true and its predicted class")  # fmt: skip
    if true is not None and predicted is not None:
        for name, value in (("true", true), ("predicted", predicted)):
            if value >= classes:
                raise _field(name, f"this run has {classes} classes, numbered 0 to {classes - 1}")
        indices = held.cell(true, predicted)
        cell, total = [true, predicted], len(indices)
        pictures = [
            HeldOutPicture(index=i, true=true, predicted=predicted,
                           confidence=held.confidence[i],
                           url=f"/api/runs/{run_id}/heldout/{i}.png?c={found.checkpoint}")
            for i in indices[:limit]
        ]  # fmt: skip
    return HeldOutOut(
        run_id=run_id, checkpoint=found.checkpoint, epoch=found.epoch,
        class_names=held.class_names, train_counts=held.train_counts, val_counts=held.val_counts,
        confusion=held.confusion, per_class_accuracy=held.per_class_accuracy,
        accuracy=held.accuracy, cell=cell, total=total, pictures=pictures,
    )  # fmt: skip


@router.get("/{run_id}/heldout/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})  # fmt: skip
def held_out_picture(run_id: RunId, index: Annotated[int, Path(ge=0, le=10_000_000)],
                     manager: Manager, runs: Runs) -> Response:  # fmt: skip
    """One held-out picture as the network read it (PNG)."""
    try:
        found = _held_out(manager, runs, run_id)
    except CNNCoreError as exc:
        raise _field("run_id", str(exc)) from exc
    if index >= len(found.held_out.labels):
        raise HTTPException(404, detail=f"run {run_id} held out {len(found.held_out.labels)} "
                                        f"pictures; {index} is not one of them")  # fmt: skip
    return Response(found.png(index), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=300"})  # fmt: skip
