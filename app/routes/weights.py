"""Which weights each zoo model has here (`cnnviz weights` manages them)."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.deps import AppSettings
from app.schemas.weights import ModelWeightsOut
from app.weights_choice import runs_by_model
from cnncore.pretrained import weights_overview

router = APIRouter(prefix="/api/weights", tags=["weights"])


@router.get("", response_model=list[ModelWeightsOut])
async def weights(settings: AppSettings) -> list[ModelWeightsOut]:
    """Per zoo model: bundled, installed ImageNet, training-run and initial weights, what the
    pages use now, and the command that gets torchvision's published file when it is missing."""

    def listing() -> list[ModelWeightsOut]:
        runs = runs_by_model(settings)
        return [ModelWeightsOut.of(row, runs.get(row.model, []))
                for row in weights_overview(settings.weights_dir)]  # fmt: skip

    return await run_in_threadpool(listing)
