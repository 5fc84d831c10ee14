"""Body of a live prediction's answer (`POST /api/predict`): every class's probability."""

from __future__ import annotations

from pydantic import BaseModel

from app.schemas.common import finite_or_none
from cnncore.live_prediction import ClassProbabilities


class ClassProbabilitiesOut(BaseModel):
    """softmax of the logits for one picture: `probs[i]` belongs to `labels[i]` (all classes,
    in the model's output order, so the page's bars keep their places from frame to frame)."""

    model: str
    run: str | None  # the training run whose newest checkpoint answered; None: bundled weights
    labels: list[str]
    probs: list[float | None]  # None: NaN (logits that overflowed)
    input_shape: list[int]  # channels, height, width the network was given

    @classmethod
    def of(cls, found: ClassProbabilities, model: str, run: str | None) -> ClassProbabilitiesOut:
        probs = [finite_or_none(p) for p in found.probs]
        return cls(model=model, run=run, labels=list(found.labels), probs=probs,
                   input_shape=list(found.input_shape))  # fmt: skip
