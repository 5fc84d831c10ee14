"""Activation curves: values equal torch.nn.functional, autograd derivatives equal the textbook
formulas (and finite differences away from kinks)."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnncore.activations import ACTIVATIONS, activation_curve
from cnncore.errors import CNNCoreError

SLOPE, ALPHA = 0.2, 1.5


def _reference(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) from torch.nn.functional and f'(x) written from each paper's formula."""
    s = torch.sigmoid(x)
    if name == "sigmoid":
        return s, s * (1 - s)
    if name == "tanh":
        t = torch.tanh(x)
        return t, 1 - t**2
    if name == "relu":
        return F.relu(x), (x > 0).to(x.dtype)
    if name == "leaky_relu":
        return F.leaky_relu(x, SLOPE), torch.where(x > 0, 1.0, SLOPE).to(x.dtype)
    if name == "elu":
        return F.elu(x, ALPHA), torch.where(x > 0, 1.0, ALPHA * torch.exp(x)).to(x.dtype)
    if name == "gelu":  # x·Φ(x): Φ(x) + x·φ(x)
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
        return F.gelu(x), cdf + x * pdf
    assert name == "silu"  # x·σ(x): σ(x)·(1 + x·(1 − σ(x)))
    return F.silu(x), s * (1 + x * (1 - s))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_values_and_derivatives_match_the_formulas(name):
    curve = activation_curve(name, -6.0, 6.0, 1201, slope=SLOPE, alpha=ALPHA)
    assert curve.x.shape == curve.y.shape == curve.dy.shape == (1201,)
    torch.testing.assert_close(curve.x, torch.linspace(-6, 6, 1201, dtype=torch.float64))
    y, dy = _reference(name, curve.x)
    torch.testing.assert_close(curve.y, y)
    torch.testing.assert_close(curve.dy, dy)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivatives_agree_with_finite_differences_off_the_kink(name):
    curve = activation_curve(name, -3.05, 2.95, 61, slope=SLOPE, alpha=ALPHA)  # x = 0 not sampled
    h = 1e-6
    plus = activation_curve(name, -3.05 + h, 2.95 + h, 61, slope=SLOPE, alpha=ALPHA).y
    minus = activation_curve(name, -3.05 - h, 2.95 - h, 61, slope=SLOPE, alpha=ALPHA).y
    torch.testing.assert_close(curve.dy, (plus - minus) / (2 * h), atol=1e-7, rtol=1e-6)


def test_kinks_take_torchs_one_sided_values():
    at_zero = {name: activation_curve(name, -1.0, 1.0, 3, slope=SLOPE, alpha=ALPHA).dy[1].item()
               for name in ("relu", "leaky_relu", "elu")}
    assert at_zero == {"relu": 0.0, "leaky_relu": SLOPE, "elu": ALPHA}


def test_parameters_change_the_curve():
    gentle = activation_curve("leaky_relu", -2.0, 0.0, 3, slope=0.01)
    steep = activation_curve("leaky_relu", -2.0, 0.0, 3, slope=0.3)
    assert gentle.y[0].item() == pytest.approx(-0.02) and steep.y[0].item() == pytest.approx(-0.6)
    assert gentle.slope == 0.01 and gentle.alpha is None
    elu = activation_curve("elu", -1.0, 1.0, 3, alpha=2.0)
    assert elu.y[0].item() == pytest.approx(2.0 * (math.exp(-1) - 1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "softsign"}, "name"),
        ({"name": "relu", "start": 1.0, "stop": 1.0}, "stop"),
        ({"name": "relu", "start": float("nan")}, "start"),
        ({"name": "relu", "points": 1}, "points"),
        ({"name": "leaky_relu", "slope": float("inf")}, "slope"),
        ({"name": "elu", "alpha": float("nan")}, "alpha"),
    ],
)
def test_bad_requests_name_their_field(kwargs, field):
    with pytest.raises(CNNCoreError) as info:
        activation_curve(**kwargs)
    assert info.value.field == field
