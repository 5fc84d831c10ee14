"""Optimisers, learning-rate schedules and losses a training run chooses by name.

- SGD (Robbins & Monro 1951); momentum (Polyak 1964) and Nesterov's accelerated gradient in
  the form of Sutskever et al. (2013), "On the importance of initialization and momentum in
  deep learning" — both as `torch.optim.SGD`.
- RMSProp (Tieleman & Hinton 2012, Coursera lecture 6.5), Adam (Kingma & Ba 2015),
  AdamW with decoupled weight decay (Loshchilov & Hutter 2019).
- Step decay (multiply by γ every k epochs) and cosine annealing without restarts
  (Loshchilov & Hutter 2017, "SGDR"), both evaluated per optimisation step.
- Focal loss (Lin et al. 2017, "Focal loss for dense object detection"):
  FL(p_t) = −(1 − p_t)^γ · log p_t, which is cross-entropy when γ = 0 (`cnncore.losses`, where
  the loss explorer writes the same formula out term by term).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.losses import focal_loss

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "build_optimizer",
    "build_schedule",
    "focal_loss",
    "lr_factor",
    "make_loss",
]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
LOSSES = ("cross_entropy", "focal")


def build_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """One of OPTIMIZERS with the given learning rate; `momentum` is SGD's μ (momentum and
    nesterov) or RMSProp's; Adam and AdamW keep their paper defaults β = (0.9, 0.999)."""
    if not 0.0 < lr <= 10.0:
        raise CNNCoreError("learning rate must be above 0 and at most 10", "lr")
    if not 0.0 <= momentum < 1.0:
        raise CNNCoreError("momentum must be at least 0 and below 1", "momentum")
    if not 0.0 <= weight_decay <= 1.0:
        raise CNNCoreError("weight decay must be between 0 and 1", "weight_decay")
    params = list(params)
    # foreach=False: the per-tensor loop is the reference path and gives bit-identical runs
    # across machines; these models have a handful of tensors, so it costs nothing.
    common = {"lr": lr, "weight_decay": weight_decay, "foreach": False}
    if name == "sgd":
        return torch.optim.SGD(params, **common)
    if name == "momentum":
        return torch.optim.SGD(params, momentum=momentum, **common)
    if name == "nesterov":
        if momentum == 0.0:  # Nesterov's look-ahead is a momentum step: torch refuses μ = 0
            raise CNNCoreError("Nesterov momentum needs a momentum above 0", "momentum")
        return torch.optim.SGD(params, momentum=momentum, nesterov=True, **common)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=momentum, **common)
    if name == "adam":
        return torch.optim.Adam(params, **common)
    if name == "adamw":
        return torch.optim.AdamW(params, **common)
    raise CNNCoreError(
        f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}", "optimizer"
    )


def lr_factor(
    kind: str, step: int, steps_per_epoch: int, total_steps: int, step_size: int, gamma: float
) -> float:
    """The multiplier of the base learning rate at optimisation step `step` (0-based).

    step: γ^⌊epoch / step_size⌋ with epoch = ⌊step / steps_per_epoch⌋;
    cosine: ½ (1 + cos(π · step / total_steps)), from 1 down to 0 at the last step.
    """
    if kind == "constant":
        return 1.0
    if kind == "step":
        return gamma ** ((step // steps_per_epoch) // step_size)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    raise CNNCoreError(f"unknown schedule {kind!r}; choose from {', '.join(SCHEDULES)}", "schedule")


def build_schedule(
    kind: str,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    *,
    step_size: int = 1,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per batch, so the learning-rate curve is smooth in the charts."""
    if kind not in SCHEDULES:
        raise CNNCoreError(
            f"unknown schedule {kind!r}; choose from {', '.join(SCHEDULES)}", "schedule"
        )
    if step_size < 1:
        raise CNNCoreError("step_size must be at least 1 epoch", "step_size")
    if not 0.0 < gamma <= 1.0:
        raise CNNCoreError("gamma must be above 0 and at most 1", "gamma")
    total = max(1, steps_per_epoch * epochs)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(kind, step, steps_per_epoch, total, step_size, gamma)
    )


def make_loss(
    kind: str, focal_gamma: float = 2.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss by name: batch-mean cross-entropy, or focal loss with γ."""
    if kind == "cross_entropy":
        return F.cross_entropy
    if kind == "focal":
        if not 0.0 <= focal_gamma <= 10.0:
            raise CNNCoreError("focal gamma must be between 0 and 10", "focal_gamma")
        return lambda logits, target: focal_loss(logits, target, focal_gamma)
    raise CNNCoreError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}", "loss")
