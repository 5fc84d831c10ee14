"""Activation functions and their derivatives, as torch computes them.

Sigmoid and tanh (LeCun, Bottou, Orr & Müller, "Efficient BackProp", 1998), ReLU (Nair & Hinton,
ICML 2010), Leaky ReLU (Maas, Hannun & Ng, ICML 2013), ELU (Clevert, Unterthiner & Hochreiter,
ICLR 2016), GELU (Hendrycks & Gimpel, 2016; the exact erf form, torch's default) and SiLU
(Elfwing, Uchibe & Doya, 2018; "Swish" in Ramachandran et al., 2017).

Derivatives come from autograd, so they are what backpropagation really uses, kinks included:
torch takes the left-hand side at 0: ReLU'(0) = 0, LeakyReLU'(0) = slope, ELU'(0) = α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnncore.errors import CNNCoreError

__all__ = [
    "ACTIVATIONS",
    "ActivationCurve",
    "activation_curve",
    "activation_module",
]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu")


def _finite(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CNNCoreError(
            f"{field} must be a finite number, got {value!r}", field, code="finite_number"
        )
    return float(value)


def activation_module(name: str, slope: float = 0.01, alpha: float = 1.0) -> nn.Module:
    """The torch module for `name`; `slope` is Leaky ReLU's negative slope, `alpha` ELU's α."""
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(_finite(slope, "slope"))
    if name == "elu":
        return nn.ELU(_finite(alpha, "alpha"))
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise CNNCoreError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}",
                       "name", code="enum", ctx={"expected": list(ACTIVATIONS)})


@dataclass(frozen=True)
class ActivationCurve:
    """y = f(x) and dy = f'(x) sampled at evenly spaced x (float64)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    dy: torch.Tensor
    slope: float | None
    alpha: float | None


def activation_curve(
    name: str,
    start: float = -5.0,
    stop: float = 5.0,
    points: int = 201,
    *,
    slope: float = 0.01,
    alpha: float = 1.0,
) -> ActivationCurve:
    """Sample an activation and its derivative (autograd) at `points` x from `start` to `stop`."""
    start, stop = _finite(start, "start"), _finite(stop, "stop")
    if not start < stop:
        raise CNNCoreError(
            f"start ({start}) must be below stop ({stop})", "stop",
            code="range_start_not_below_stop", ctx={"start": start, "stop": stop},
        )  # fmt: skip
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise CNNCoreError(
            f"points must be an integer of at least 2, got {points!r}", "points",
            code="integer_at_least", ctx={"ge": 2},
        )  # fmt: skip
    function = activation_module(name, slope, alpha)
    x = torch.linspace(start, stop, points, dtype=torch.float64, requires_grad=True)
    y = function(x)
    # Elementwise f: the gradient of Σ f(x_i) with respect to x_i is f'(x_i).
    (dy,) = torch.autograd.grad(y.sum(), x)
    return ActivationCurve(
        name=name, x=x.detach(), y=y.detach(), dy=dy,
        slope=float(slope) if name == "leaky_relu" else None,
        alpha=float(alpha) if name == "elu" else None,
    )
