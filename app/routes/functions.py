"""The activation and loss explorers' API: curves with derivatives, the vanishing-gradient
experiment, and softmax/cross-entropy/focal loss term by term."""

from fastapi import APIRouter

from app.deps import AppSettings
from app.lesson_answers.layers import softmax_lines
from app.schemas.functions import (
    ActivationRequest,
    ActivationResponse,
    LossRequest,
    LossResponse,
    VanishingRequest,
)
from app.small_work import run_small
from cnncore.activations import activation_curve
from cnncore.losses import compute_loss
from cnncore.vanishing import VanishingReport, vanishing_gradients

router = APIRouter(prefix="/api/functions", tags=["functions"])


@router.post("/activation", response_model=ActivationResponse)
def activation(body: ActivationRequest, settings: AppSettings) -> ActivationResponse:
    """An activation function and its autograd derivative, sampled over a range."""
    body.check_limits(settings)
    curve = activation_curve(body.name, body.start, body.stop, body.points, slope=body.slope,
                             alpha=body.alpha)
    return ActivationResponse(name=curve.name, slope=curve.slope, alpha=curve.alpha,
                              x=curve.x.tolist(), y=curve.y.tolist(), dy=curve.dy.tolist())


@router.post("/vanishing", response_model=VanishingReport)
async def vanishing(body: VanishingRequest, settings: AppSettings) -> VanishingReport:
    """Gradient norm of every layer of a deep stack after one backward pass at initialisation
    (small work: on a one-torch-thread pool, `app.small_work`)."""
    body.check_limits(settings)
    options = body.model_dump(exclude={"activation", "depth"})
    return await run_small(vanishing_gradients, body.activation, body.depth, **options)


@router.post("/loss", response_model=LossResponse)
def loss(body: LossRequest, settings: AppSettings) -> LossResponse:
    """Softmax (or sigmoid) probabilities, every term of the loss, its total and ∂loss/∂logits."""
    body.check_limits(settings)
    result = compute_loss(
        body.kind, body.target, logits=body.logits, probs=body.probs, log_base=body.log_base,
        temperature=body.temperature, gamma=body.gamma, alpha=body.alpha,
    )
    return LossResponse(
        kind=result.kind, log_base=result.log_base, temperature=result.temperature,
        gamma=result.gamma, alpha=result.alpha, logits=result.logits.tolist(),
        probs=result.probs.tolist(), target=result.target.tolist(), terms=result.terms.tolist(),
        loss=result.loss, grad=result.grad.tolist(),
        comparison=result.comparison,
        softmax_worked=None if result.kind == "binary_cross_entropy" else list(
            softmax_lines((result.logits / result.temperature).tolist(), result.probs.tolist())
        ),
    )
