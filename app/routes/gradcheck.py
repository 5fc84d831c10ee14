"""Gradient checking as an API: does backpropagation compute the derivative it claims to?"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.limits import heavy_work
from app.schemas.gradcheck import GradCheckIn, GradCheckOut
from cnncore.gradcheck import check_small_network

router = APIRouter(prefix="/api", tags=["training"])


@router.post(
    "/gradcheck", response_model=GradCheckOut, dependencies=[Depends(heavy_work("gradcheck"))]
)
def gradcheck(body: GradCheckIn) -> GradCheckOut:
    """Central differences vs autograd per parameter tensor of a small seeded network, in
    float64 (Goodfellow et al. 2016, §11.5; CS231n "Gradient checks")."""
    result = check_small_network(
        body.activation,
        eps=body.epsilon,
        max_coordinates=body.samples,
        seed=body.seed,
        network=body.model,
    )
    return GradCheckOut.of(body, result)
