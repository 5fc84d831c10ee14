"""Gradient checking: central differences agree with autograd on a correct network and expose a
backward pass with a bug, tensor by tensor."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.gradcheck import check_small_network, gradient_check, small_network

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/cnncore/conftest.py


class BuggyTanh(torch.autograd.Function):
    """tanh whose backward forgets a square: returns (1 − y) instead of (1 − y²)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y)


class BuggyTanhModule(nn.Module):
    def forward(self, x):
        return BuggyTanh.apply(x)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu", "elu", "silu"])
def test_backprop_matches_central_differences(activation):
    result = check_small_network(activation, batch=3, max_coordinates=20, seed=1)
    assert result.passed and result.max_relative_error < 1e-6
    assert [t.name for t in result.tensors] == ["0.weight", "0.bias", "4.weight", "4.bias"]
    conv = result.tensors[0]
    assert conv.checked == conv.total == 18 and len(conv.numeric) == 18  # small: every coordinate
    linear = result.tensors[2]
    assert linear.total == 3 * 2 * 9 and linear.checked == 20  # large: a sample
    assert len({tuple(c) for c in linear.coordinates}) == 20
    for tensor in result.tensors:
        assert tensor.relative_error < 1e-6
        assert tensor.numeric == pytest.approx(tensor.analytic, rel=1e-5, abs=1e-9)


def test_reported_gradients_are_autograds_own():
    torch.manual_seed(0)
    model = small_network("tanh")
    x, y = torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 2])
    result = gradient_check(model, x, y, max_coordinates=200)
    reference = model.double()
    F.cross_entropy(reference(x), y).backward()
    for tensor, (_, param) in zip(result.tensors, reference.named_parameters(), strict=True):
        assert tensor.analytic == pytest.approx(param.grad.flatten().tolist(), rel=1e-12)
        # central differences of a smooth loss agree with it to O(ε²) + rounding
        assert max(abs(n - a) for n, a in zip(tensor.numeric, tensor.analytic, strict=True)) < 1e-8


def test_a_wrong_backward_is_caught_where_it_matters():
    torch.manual_seed(0)
    buggy = small_network("tanh")
    buggy[1] = BuggyTanhModule()
    x, y = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 1])
    result = gradient_check(buggy, x, y)
    assert not result.passed and result.max_relative_error > 1e-2
    by_name = {t.name: t for t in result.tensors}
    # the conv sits before the broken tanh: its gradient is wrong…
    assert by_name["0.weight"].relative_error > 1e-2 and not by_name["0.weight"].passed
    assert by_name["0.bias"].relative_error > 1e-2
    # …the linear layer after it still gets the right one
    assert by_name["4.weight"].passed and by_name["4.bias"].passed


def test_the_model_given_is_left_untouched_and_settings_are_checked():
    model = small_network("relu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_check(model, torch.randn(2, 1, 6, 6), torch.tensor([0, 1]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32 and model[0].weight.grad is None
    with pytest.raises(CNNCoreError) as err:
        gradient_check(model, torch.randn(2, 1, 6, 6), torch.tensor([0, 1]), eps=0.5)
    assert err.value.field == "eps"
    with pytest.raises(CNNCoreError) as err:
        check_small_network("softsign")
    assert err.value.field == "activation"
    with pytest.raises(CNNCoreError):
        check_small_network(size=5)
