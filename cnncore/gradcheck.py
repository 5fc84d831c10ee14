"""Gradient checking: does backpropagation compute the derivative it claims to?

Each parameter coordinate θ_i is nudged both ways and the loss re-evaluated; the central
difference (L(θ + ε e_i) − L(θ − ε e_i)) / 2ε has error O(ε²), so in float64 with ε = 1e-6 it
agrees with a correct analytic gradient to about 1e-9 (Goodfellow, Bengio & Courville 2016,
"Deep Learning", §11.5 "Debugging strategies"; CS231n notes "Gradient checks"). The two are
compared per parameter tensor by the relative error

    ‖g_num − g_auto‖ / max(‖g_num‖ + ‖g_auto‖, tiny)

which is near 1e-9 when backpropagation is right and near 1 when it is wrong. Large tensors are
checked on a seeded sample of coordinates. Near a kink (ReLU at 0, max pooling ties) a
difference can straddle the corner and disagree for an honest reason; the default small network
uses tanh and average pooling, which are smooth everywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.activations import ACTIVATIONS, activation_module
from cnncore.errors import CNNCoreError
from cnncore.seeding import seeded

__all__ = [
    "GradCheckResult",
    "TensorCheck",
    "NETWORKS",
    "check_small_network",
    "gradient_check",
    "small_mlp",
    "small_network",
]

TINY = 1e-30  # keeps the relative error defined when both gradients are exactly zero


@dataclass
class TensorCheck:
    """One parameter tensor: where it was probed and how far the two gradients are apart."""

    name: str
    shape: list[int]
    checked: int  # coordinates compared
    total: int  # coordinates in the tensor
    coordinates: list[list[int]]  # the index of each checked coordinate
    numeric: list[float]  # central differences at those coordinates
    analytic: list[float]  # autograd's gradient at the same coordinates
    relative_error: float
    max_abs_difference: float
    passed: bool


@dataclass
class GradCheckResult:
    loss: float
    eps: float
    tolerance: float
    tensors: list[TensorCheck]
    max_relative_error: float
    passed: bool


def small_network(
    activation: str = "tanh", in_channels: int = 1, channels: int = 2, size: int = 6,
    classes: int = 3,
) -> nn.Sequential:  # fmt: skip
    """conv 3×3 (same padding) → activation → average pool 2 → flatten → linear: every kind of
    layer a CNN is made of, small enough to probe every coordinate."""
    if activation not in ACTIVATIONS:
        raise CNNCoreError(
            f"activation must be one of {', '.join(ACTIVATIONS)}", "activation",
            code="enum", ctx={"expected": list(ACTIVATIONS)},
        )  # fmt: skip
    if size < 2 or size % 2:
        raise CNNCoreError(
            "size must be an even number of at least 2", "size",
            code="even_size_required", ctx={"ge": 2},
        )  # fmt: skip
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        activation_module(activation),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (size // 2) ** 2, classes),
    )


def small_mlp(
    activation: str = "tanh", in_channels: int = 1, hidden: int = 8, size: int = 6,
    classes: int = 3,
) -> nn.Sequential:  # fmt: skip
    """flatten → linear → activation → linear: the fully connected baseline, for comparing
    the gradients of a dense layer with those of a convolution."""
    if activation not in ACTIVATIONS:
        raise CNNCoreError(
            f"activation must be one of {', '.join(ACTIVATIONS)}", "activation",
            code="enum", ctx={"expected": list(ACTIVATIONS)},
        )  # fmt: skip
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * size * size, hidden),
        activation_module(activation),
        nn.Linear(hidden, classes),
    )


NETWORKS = {"tiny_cnn": small_network, "tiny_mlp": small_mlp}


def _coordinates(shape: torch.Size, limit: int, generator: torch.Generator) -> list[int]:
    total = shape.numel()
    if total <= limit:
        return list(range(total))
    return sorted(torch.randperm(total, generator=generator)[:limit].tolist())


@torch.no_grad()
def _central_difference(loss_at: Callable[[], torch.Tensor], flat: torch.Tensor, i: int,
                        eps: float) -> float:  # fmt: skip
    original = flat[i].item()
    flat[i] = original + eps
    plus = loss_at().item()
    flat[i] = original - eps
    minus = loss_at().item()
    flat[i] = original  # restored exactly: the same float64 value is written back
    return (plus - minus) / (2 * eps)


def gradient_check(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    *,
    eps: float = 1e-6,
    max_coordinates: int = 20,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> GradCheckResult:
    """Compare autograd with central differences for every parameter tensor of `model`.

    Works on a float64 copy in eval mode (no dropout noise), so `model` is left untouched.
    At most `max_coordinates` coordinates per tensor, drawn with `seed`.
    """
    if not 0.0 < eps <= 1e-2:
        raise CNNCoreError(
            "eps must be above 0 and at most 0.01", "eps",
            code="step_out_of_range", ctx={"gt": 0, "le": 1e-2},
        )  # fmt: skip
    if max_coordinates < 1:
        raise CNNCoreError(
            "max_coordinates must be at least 1", "max_coordinates",
            code="integer_at_least", ctx={"ge": 1},
        )  # fmt: skip
    net = copy.deepcopy(model).double().eval()
    x = inputs.detach().double()

    def loss_at() -> torch.Tensor:
        return loss_fn(net(x), targets)

    net.zero_grad(set_to_none=True)
    loss = loss_at()
    loss.backward()
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for name, param in net.named_parameters():
        flat = param.data.view(-1)
        picked = _coordinates(param.shape, max_coordinates, generator)
        grad = param.grad if param.grad is not None else torch.zeros_like(param)  # unused
        analytic = grad.view(-1)[picked]
        numeric = torch.tensor([_central_difference(loss_at, flat, i, eps) for i in picked],
                               dtype=torch.float64)  # fmt: skip
        difference = numeric - analytic
        scale = max(numeric.norm().item() + analytic.norm().item(), TINY)
        error = difference.norm().item() / scale
        coordinates = [list(torch.unravel_index(torch.tensor(i), param.shape)) for i in picked]
        checks.append(TensorCheck(
            name, list(param.shape), len(picked), param.numel(),
            [[int(c) for c in coordinate] for coordinate in coordinates],
            numeric.tolist(), analytic.tolist(), error, difference.abs().max().item(),
            error < tolerance,
        ))  # fmt: skip
    worst = max((c.relative_error for c in checks), default=0.0)
    return GradCheckResult(loss.item(), eps, tolerance, checks, worst, worst < tolerance)


def check_small_network(
    activation: str = "tanh",
    *,
    batch: int = 2,
    size: int = 6,
    classes: int = 3,
    eps: float = 1e-6,
    max_coordinates: int = 20,
    seed: int = 0,
    network: str = "tiny_cnn",
) -> GradCheckResult:
    """The page's gradient check: a seeded `small_network` (or `small_mlp`) on a seeded random
    batch."""
    if not 1 <= batch <= 16:
        raise CNNCoreError(
            "batch must be 1 to 16", "batch", code="integer_between", ctx={"ge": 1, "le": 16}
        )
    if not 2 <= classes <= 10:
        raise CNNCoreError(
            "classes must be 2 to 10", "classes", code="integer_between", ctx={"ge": 2, "le": 10}
        )
    if network not in NETWORKS:
        raise CNNCoreError(
            f"network must be one of {', '.join(NETWORKS)}", "network",
            code="enum", ctx={"expected": list(NETWORKS)},
        )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    with seeded(seed):  # the seed must not disturb anyone else's draws, nor they its
        model = NETWORKS[network](activation, size=size, classes=classes)
    inputs = torch.randn(batch, 1, size, size, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (batch,), generator=generator)
    return gradient_check(
        model, inputs, targets, eps=eps, max_coordinates=max_coordinates, seed=seed
    )
