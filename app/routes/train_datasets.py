"""/train's dataset picker: the bundled datasets beside the student's own (the ids this browser
holds tokens for, `mine`), each own dataset with its current and kept versions."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.datasets.files import DATASET_ID_PATTERN
from app.datasets.service import Datasets, get_datasets, untrainable
from app.runs.budget import DATASET_IMAGES
from app.runs.spec import DATASET_FACTS
from app.schemas.train_datasets import (
    BundledDatasetOut,
    TrainDatasetsOut,
    UserClassOut,
    UserDatasetOut,
)
from cnncore.data import BUNDLED_DATASETS

router = APIRouter(prefix="/api/train", tags=["runs"])

Mine = Annotated[list[str], Query(max_length=50)]  # dataset ids (16 hex digits each)


def _bundled() -> list[BundledDatasetOut]:
    out = []
    for name in BUNDLED_DATASETS:
        channels, side, names = DATASET_FACTS[name]
        out.append(BundledDatasetOut(
            name=name, channels=channels, side=side, class_names=list(names),
            images=DATASET_IMAGES.get(name),
        ))  # fmt: skip
    return out


def _user(datasets: Datasets, dataset_id: str) -> UserDatasetOut | None:
    record = datasets.store.get(dataset_id)
    if record is None:
        return None
    reason = untrainable(record)
    return UserDatasetOut(
        id=record.id, name=record.name, version=record.version,
        versions=[v for v in datasets.files.versions(record.id) if v != record.version],
        classes=[UserClassOut(name=c.name, images=c.images) for c in record.classes],
        images=record.images, trainable=reason is None, reason=reason,
    )  # fmt: skip


@router.get("/datasets", response_model=TrainDatasetsOut)
def train_datasets(datasets: Annotated[Datasets, Depends(get_datasets)],
                   mine: Mine = []) -> TrainDatasetsOut:  # fmt: skip  # noqa: B006
    """Bundled datasets, and the student's own among `mine` (unknown ids: `missing`)."""
    pattern = re.compile(DATASET_ID_PATTERN)
    user, missing = [], []
    for dataset_id in dict.fromkeys(mine):  # each once, in the order asked
        found = _user(datasets, dataset_id) if pattern.match(dataset_id) else None
        if found is None:
            missing.append(dataset_id)
        else:
            user.append(found)
    return TrainDatasetsOut(bundled=_bundled(), user=user, missing=missing)
