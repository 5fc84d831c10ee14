"""Bodies of `POST /api/gradcheck`: a small seeded network, its parameters probed by central
differences and compared with backpropagation (`cnncore.gradcheck`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cnncore.activations import ACTIVATIONS
from cnncore.gradcheck import NETWORKS, GradCheckResult, TensorCheck

FORMULA = "(f(θ+ε) − f(θ−ε)) / 2ε"
RELATIVE_ERROR = "‖g_num − g_auto‖ / (‖g_num‖ + ‖g_auto‖)"


class GradCheckIn(BaseModel):
    """Bounded so one check is a few hundred tiny forward passes (well under a second)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal[tuple(NETWORKS)] = "tiny_cnn"  # type: ignore[valid-type]
    activation: Literal[ACTIVATIONS] = "tanh"  # type: ignore[valid-type]
    epsilon: float = Field(1e-6, ge=1e-8, le=1e-2, description="the nudge ε of each coordinate")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    samples: int = Field(
        20, ge=1, le=200, description="coordinates compared per parameter tensor (at most)"
    )


class TensorCheckOut(BaseModel):
    name: str  # dotted parameter name, e.g. "0.weight"
    shape: list[int]
    checked: int  # coordinates compared
    total: int  # coordinates in the tensor
    relative_error: float
    max_abs_difference: float
    passed: bool

    @classmethod
    def of(cls, check: TensorCheck) -> TensorCheckOut:
        return cls.model_validate(check, from_attributes=True)  # the fields of the same names


class GradCheckOut(BaseModel):
    model: str
    activation: str
    epsilon: float
    formula: str  # the central difference used for each coordinate
    relative_error_formula: str
    threshold: float  # a tensor passes when its relative error is below this
    loss: float
    max_relative_error: float
    passed: bool
    tensors: list[TensorCheckOut]

    @classmethod
    def of(cls, body: GradCheckIn, result: GradCheckResult) -> GradCheckOut:
        return cls(
            model=body.model,
            activation=body.activation,
            epsilon=result.eps,
            formula=FORMULA,
            relative_error_formula=RELATIVE_ERROR,
            threshold=result.tolerance,
            loss=result.loss,
            max_relative_error=result.max_relative_error,
            passed=result.passed,
            tensors=[TensorCheckOut.of(check) for check in result.tensors],
        )
