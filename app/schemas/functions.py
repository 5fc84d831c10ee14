"""Request and response bodies of the activation, vanishing-gradient and loss API
(`/api/functions`).

Parse-time ceilings keep any body small; the configurable limits of `Settings` then apply in
`check_limits`, naming the offending field in a 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.schemas.common import FiniteBody, Value, at_most
from app.settings import Settings
from cnncore.losses import FocalExample

PARSE_CEILING = 100_001  # samples, before the configurable limits apply
MAX_CLASSES_CEILING = 10_000

ActivationName = Literal["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Slope = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False,
                               description="Leaky ReLU: the slope for x < 0")]
Alpha = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False,
                               description="ELU: the value approached as x → −∞ is −α")]


# --- /activation ------------------------------------------------------------------------------


class ActivationRequest(FiniteBody):
    name: ActivationName = "relu"
    slope: Slope = 0.01
    alpha: Alpha = 1.0
    start: Finite = -5.0
    stop: Finite = 5.0
    points: Annotated[int, Field(ge=2, le=PARSE_CEILING)] = 201

    def check_limits(self, settings: Settings) -> None:
        at_most("points", self.points, settings.max_activation_points, "number of points")
        for field in ("start", "stop"):
            at_most(field, abs(getattr(self, field)), settings.max_activation_range,
                     f"magnitude of {field}")


class ActivationResponse(BaseModel):
    name: ActivationName
    slope: float | None
    alpha: float | None
    x: list[float]
    y: list[float]
    dy: list[float] = Field(description="f'(x) from autograd")


# --- /vanishing -------------------------------------------------------------------------------


class VanishingRequest(FiniteBody):
    activation: ActivationName = "sigmoid"
    depth: Annotated[int, Field(ge=1, le=1000, description="hidden layers")] = 10
    width: Annotated[int, Field(ge=1, le=4096, description="units per hidden layer")] = 32
    batch_norm: bool = False
    init: Literal["default", "xavier", "kaiming"] = Field(
        "kaiming", description="default: torch's U(±1/√fan_in); xavier: Glorot 2010; kaiming: He"
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    slope: Slope = 0.01
    alpha: Alpha = 1.0

    def check_limits(self, settings: Settings) -> None:
        at_most("depth", self.depth, settings.max_vanishing_depth, "depth")
        at_most("width", self.width, settings.max_vanishing_width, "width")


# --- /loss ------------------------------------------------------------------------------------

Scores = Annotated[list[Value], Field(min_length=1, max_length=MAX_CLASSES_CEILING)]


class LossRequest(FiniteBody):
    logits: Scores | None = None
    probs: Scores | None = Field(None, description="instead of logits; must sum to 1")
    target: Annotated[int, Field(ge=0, le=MAX_CLASSES_CEILING)] | Finite | Scores = Field(
        0, description="class index, a distribution over the classes, or (binary) y in [0, 1]"
    )
    kind: Literal["cross_entropy", "binary_cross_entropy", "focal"] = "cross_entropy"
    log_base: Literal["e", "2", "10", 2, 10] = "e"
    temperature: Annotated[float, Field(ge=0.01, le=1000.0, allow_inf_nan=False)] = 1.0
    gamma: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)] = 2.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None

    def check_limits(self, settings: Settings) -> None:
        for field in ("logits", "probs", "target"):
            values = getattr(self, field)
            if isinstance(values, list):
                at_most(field, len(values), settings.max_loss_classes, f"number of {field}")


class LossResponse(BaseModel):
    kind: str
    log_base: str
    temperature: float
    gamma: float | None
    alpha: float | None
    logits: list[float]
    probs: list[float] = Field(description="binary: [P(class 0), P(class 1)]")
    target: list[float] = Field(description="the target as a distribution over the classes")
    terms: list[float] = Field(description="per class; the loss is their sum")
    loss: float
    grad: list[float] = Field(description="∂loss/∂logits (p − y for cross-entropy, T = 1, ln)")
    comparison: list[FocalExample] | None = Field(
        None, description="focal: cross-entropy vs focal loss, this and a p_t = 0.9 / 0.1 example"
    )
    softmax_worked: list[str] | None = Field(
        None,
        description="softmax written out as the lesson writes it: e^(z_i/T) each, their sum Σ, "
        "p_i = e^(z_i/T) / Σ (null for the binary loss, a sigmoid)",
    )
