"""Softmax with temperature, cross-entropy, binary cross-entropy and focal loss, term by term.

Softmax with temperature T: p_i = exp(z_i/T) / Σ_j exp(z_j/T) (Hinton, Vinyals & Dean,
"Distilling the Knowledge in a Neural Network", 2015). Cross-entropy against a target
distribution y: H = −Σ_i y_i · log_b p_i (Goodfellow, Bengio & Courville, "Deep Learning", 2016,
§6.2.2.3), whose gradient with respect to the logits is (p − y) / (T · ln b). Focal loss (Lin,
Goyal, Girshick, He & Dollár, "Focal Loss for Dense Object Detection", ICCV 2017, eq. 5):
FL(p_t) = −α_t (1 − p_t)^γ log p_t, which down-weights examples the model already gets right.
`focal_terms` is that formula, the one place it is written: the explorer's term-by-term
`compute_loss` and the training loss `focal_loss` (a batch mean, used by `cnncore.optim`) both
call it.

One logit means the binary (sigmoid) case, two or more the softmax case. Logs are taken in a
numerically stable way (log-softmax, log-sigmoid); gradients come from autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnncore.errors import CNNCoreError

__all__ = [
    "LOG_BASES",
    "LOSS_KINDS",
    "FocalExample",
    "LossResult",
    "compute_loss",
    "focal_loss",
    "focal_terms",
    "softmax_with_temperature",
]

LOSS_KINDS = ("cross_entropy", "binary_cross_entropy", "focal")
LOG_BASES = {"e": 1.0, "2": math.log(2.0), "10": math.log(10.0)}  # base → ln(base)
SUM_TOLERANCE = 1e-6  # how far from 1 a given distribution may sum (rounded input)
EASY_P_T, HARD_P_T = 0.9, 0.1  # Lin et al. §3.2: p_t = 0.9 is their "well-classified" example


@dataclass(frozen=True)
class FocalExample:
    """Cross-entropy and focal loss of one example whose true class has probability p_t."""

    example: str  # "current", "easy" (p_t = 0.9) or "hard" (p_t = 0.1)
    p_t: float
    cross_entropy: float
    focal: float
    ratio: float | None  # cross_entropy / focal: how often focal shrinks it (None: focal is 0)


@dataclass(frozen=True)
class LossResult:
    """A loss written out. Binary losses list the classes (0, 1), so `probs` and `terms` have two
    entries while `logits` and `grad` have one."""

    kind: str
    logits: torch.Tensor  # the logits the loss saw (from probs: ln p, or logit(p) for binary)
    probs: torch.Tensor
    target: torch.Tensor  # the target as a distribution over the classes
    terms: torch.Tensor  # per class; loss = Σ terms
    loss: float
    grad: torch.Tensor  # ∂loss/∂logits
    log_base: str
    temperature: float
    gamma: float | None
    alpha: float | None
    comparison: list[FocalExample] | None


def softmax_with_temperature(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """p = softmax(z / T): T > 1 flattens the distribution, T < 1 sharpens it."""
    return torch.softmax(logits / temperature, dim=-1)


def focal_terms(log_p: torch.Tensor, gamma: float) -> torch.Tensor:
    """−(1 − p)^γ · ln p elementwise, from ln p (Lin et al. 2017, eq. 4; α applied by the caller).

    (1 − p) is taken as −expm1(ln p), exact near p = 1 where 1 − exp(ln p) cancels, and clamped
    at the dtype's smallest normal number so that 0^γ keeps a finite gradient for γ < 1.
    """
    modulating = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny) ** gamma
    return -modulating * log_p


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean over a batch (N×K logits, N class indices) of −(1 − p_t)^γ log p_t (Lin et al. 2017,
    eq. 5, without α): the training loss. γ = 0 is `F.cross_entropy`."""
    log_p_t = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    return focal_terms(log_p_t, gamma).mean()


def _vector(values, field: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise CNNCoreError(
            f"{field} must be a list of numbers", field, code="numbers_list"
        ) from exc
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise CNNCoreError(
            f"{field} must be a non-empty list of numbers", field, code="numbers_list"
        )
    if not torch.isfinite(tensor).all():
        raise CNNCoreError(f"{field} contains NaN or infinity", field, code="finite_numbers")
    return tensor


def _distribution(values: torch.Tensor, field: str) -> torch.Tensor:
    if (values < 0).any() or (values > 1).any():
        raise CNNCoreError(
            f"every entry of {field} must lie in [0, 1]", field, code="probability_out_of_range"
        )
    total = float(values.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise CNNCoreError(
            f"{field} must sum to 1, got {total:.6g}",
            field,
            code="probabilities_not_normalised",
            ctx={"total": float(f"{total:.6g}")},
        )
    return values


def _logits(logits, probs, binary: bool) -> torch.Tensor:
    if (logits is None) == (probs is None):
        raise CNNCoreError(
            "give either logits or probs, not both or neither", "logits", code="logits_or_probs"
        )
    if logits is not None:
        return _vector(logits, "logits")
    p = _vector(probs, "probs")
    if binary:
        if p.numel() != 1 or not 0 < float(p[0]) < 1:
            raise CNNCoreError("binary probs is one probability of class 1, strictly between 0 "
                               "and 1", "probs", code="binary_probability_out_of_range")
        return torch.logit(p)
    if (p <= 0).any():
        # ln 0 = −∞ is a logit with no gradient to show; a tiny probability works instead.
        raise CNNCoreError("every probability must be above 0 (use e.g. 1e-9 for 'never')",
                           "probs", code="probability_zero")
    return torch.log(_distribution(p, "probs"))


def _target(target, classes: int, binary: bool) -> torch.Tensor:
    """A class index, or a distribution over the classes, as a distribution."""
    if binary:
        if isinstance(target, (list, tuple)):
            raise CNNCoreError(
                "a binary target is one number: 0, 1 or a probability", "target",
                code="binary_target_one_number",
            )  # fmt: skip
        value = float(_vector([target], "target")[0])
        if not 0 <= value <= 1:
            raise CNNCoreError(
                f"a binary target must lie in [0, 1], got {value}", "target",
                code="binary_target_out_of_range", ctx={"target": value},
            )  # fmt: skip
        return torch.tensor([1.0 - value, value], dtype=torch.float64)
    if isinstance(target, float) and target.is_integer():
        target = int(target)  # 1.0 from a JSON client is class 1
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < classes:
            raise CNNCoreError(f"target class {target} is out of range 0..{classes - 1}",
                               "target", code="target_class_out_of_range",
                               ctx={"target": target, "classes": classes, "le": classes - 1})
        return F.one_hot(torch.tensor(target), classes).to(torch.float64)
    distribution = _vector(target, "target")
    if distribution.numel() != classes:
        raise CNNCoreError(f"target has {distribution.numel()} entries for {classes} classes",
                           "target", code="target_length_mismatch",
                           ctx={"entries": distribution.numel(), "classes": classes})
    return _distribution(distribution, "target")


def _log_probs(z: torch.Tensor, temperature: float, binary: bool) -> torch.Tensor:
    """ln p per class, computed stably: log-softmax, or log-sigmoid of ∓z for (class 0, 1)."""
    scaled = z / temperature
    if binary:
        return torch.cat((F.logsigmoid(-scaled), F.logsigmoid(scaled)))
    return F.log_softmax(scaled, dim=-1)


def _alpha_weights(alpha: float | None, binary: bool, classes: int) -> torch.Tensor:
    """α_t per class: Lin et al. weigh class 1 by α and class 0 by 1 − α; with softmax, α is
    one factor for every class (the paper's multi-class extension). None weighs nothing."""
    if alpha is None:
        return torch.ones(classes, dtype=torch.float64)
    if binary:
        return torch.tensor([1.0 - alpha, alpha], dtype=torch.float64)
    return torch.full((classes,), alpha, dtype=torch.float64)


def _focal_example(label: str, p_t: float, gamma: float, alpha_t: float, ln_base: float):
    log_p_t = torch.tensor(math.log(p_t), dtype=torch.float64)
    cross_entropy = -log_p_t.item() / ln_base
    focal = alpha_t * focal_terms(log_p_t, gamma).item() / ln_base
    ratio = cross_entropy / focal if focal > 0 else None
    return FocalExample(label, p_t, cross_entropy, focal, ratio)


def compute_loss(
    kind: str = "cross_entropy",
    target: int | float | list[float] = 0,
    *,
    logits: list[float] | torch.Tensor | None = None,
    probs: list[float] | torch.Tensor | None = None,
    log_base: str | int = "e",
    temperature: float = 1.0,
    gamma: float = 2.0,
    alpha: float | None = None,
) -> LossResult:
    """Probabilities, per-class terms, total and logit gradient of one example's loss.

    `cross_entropy` wants two or more classes, `binary_cross_entropy` one logit (or one
    probability of class 1); `focal` takes either. Equals `F.cross_entropy`,
    `F.binary_cross_entropy_with_logits` (divided by ln b) and, for γ = 0 without α, focal
    equals cross-entropy.
    """
    if kind not in LOSS_KINDS:
        raise CNNCoreError(f"kind must be one of {', '.join(LOSS_KINDS)}, got {kind!r}", "kind",
                           code="enum", ctx={"expected": list(LOSS_KINDS)})
    base = str(log_base)
    if base not in LOG_BASES:
        raise CNNCoreError(f"log_base must be 'e', 2 or 10, got {log_base!r}", "log_base",
                           code="enum", ctx={"expected": list(LOG_BASES)})
    if isinstance(temperature, bool) or not (
        isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0
    ):
        raise CNNCoreError("temperature must be a positive number", "temperature",
                           code="greater_than", ctx={"gt": 0})
    if kind == "focal":
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
            raise CNNCoreError(f"gamma must be zero or positive, got {gamma!r}", "gamma",
                               code="greater_than_equal", ctx={"ge": 0})
        if alpha is not None and not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise CNNCoreError(f"alpha must lie in [0, 1], got {alpha!r}", "alpha",
                               code="number_between", ctx={"ge": 0, "le": 1})

    given = logits if logits is not None else probs
    count = len(given) if isinstance(given, (list, tuple, torch.Tensor)) and len(given) else 0
    binary = kind == "binary_cross_entropy" or (kind == "focal" and count == 1)
    z = _logits(logits, probs, binary).clone().requires_grad_(True)
    if binary and z.numel() != 1:
        raise CNNCoreError("binary cross-entropy takes exactly one logit", "logits",
                           code="binary_needs_one_logit")
    if not binary and z.numel() < 2:
        field = "logits" if logits is not None else "probs"
        raise CNNCoreError("cross-entropy needs at least two classes", field,
                           code="cross_entropy_needs_two_classes")
    classes = 2 if binary else z.numel()
    y = _target(target, classes, binary)
    ln_base = LOG_BASES[base]

    log_p = _log_probs(z, float(temperature), binary)
    p = log_p.exp()
    if kind == "focal":
        per_class = _alpha_weights(alpha, binary, classes) * focal_terms(log_p, gamma)
    else:
        per_class = -log_p
    # 0 · ln p is 0 even where p underflows, as torch.xlogy.
    terms = torch.where(y > 0, y * per_class, 0.0) / ln_base
    loss = terms.sum()
    (grad,) = torch.autograd.grad(loss, z)

    comparison = None
    if kind == "focal":
        alpha_t = 1.0 if alpha is None else float(alpha)
        p_target = (y * p).sum().item()
        ce_now = torch.where(y > 0, -y * log_p, 0.0).sum().item() / ln_base
        focal_now = loss.item()
        comparison = [
            FocalExample("current", p_target, ce_now, focal_now,
                         ce_now / focal_now if focal_now > 0 else None),
            _focal_example("easy", EASY_P_T, float(gamma), alpha_t, ln_base),
            _focal_example("hard", HARD_P_T, float(gamma), alpha_t, ln_base),
        ]
    return LossResult(
        kind=kind, logits=z.detach(), probs=p.detach(), target=y, terms=terms.detach(),
        loss=loss.item(), grad=grad, log_base=base, temperature=float(temperature),
        gamma=float(gamma) if kind == "focal" else None,
        alpha=float(alpha) if kind == "focal" and alpha is not None else None,
        comparison=comparison,
    )
