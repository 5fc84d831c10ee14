"""The vanishing-gradient experiment: sigmoid's first layer gets a vanishing share of the gradient,
ReLU with He initialisation does not, batch norm rescues sigmoid; numbers are autograd's."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnncore.data import DataConfig, load_images
from cnncore.errors import CNNCoreError
from cnncore.vanishing import DeepStack, vanishing_gradients


def _first_over_last(report) -> float:
    return report.layers[0].grad_norm / report.layers[-1].grad_norm


def test_sigmoid_collapses_where_relu_keeps_its_gradient():
    sigmoid = vanishing_gradients("sigmoid", 20)
    relu = vanishing_gradients("relu", 20)
    assert [layer.name for layer in sigmoid.layers] == [
        *(f"blocks.{i}.linear" for i in range(20)), "classifier"
    ]
    assert _first_over_last(sigmoid) < 1e-6  # six orders of magnitude and more
    assert 0.1 < _first_over_last(relu) < 10  # level, within one order of magnitude
    # the decay is monotone-ish: each sigmoid layer gets less than the one above it, on average
    norms = [layer.grad_norm for layer in sigmoid.layers]
    assert sum(a < b for a, b in zip(norms, norms[1:], strict=False)) >= 18


def test_with_torchs_default_init_relu_vanishes_far_less_than_sigmoid():
    sigmoid = vanishing_gradients("sigmoid", 20, init="default")
    relu = vanishing_gradients("relu", 20, init="default")
    assert _first_over_last(sigmoid) < 1e-3 * _first_over_last(relu)


def test_batch_norm_undoes_the_collapse():
    plain = vanishing_gradients("sigmoid", 20)
    normed = vanishing_gradients("sigmoid", 20, batch_norm=True)
    assert _first_over_last(normed) > 0.1 and _first_over_last(plain) < 1e-6


def test_a_shallow_stack_barely_shrinks():
    assert _first_over_last(vanishing_gradients("sigmoid", 1)) > 0.01


def test_numbers_are_one_backward_pass_of_the_seeded_model_and_batch():
    report = vanishing_gradients("tanh", 4, width=16, seed=3, batch_size=64)
    again = vanishing_gradients("tanh", 4, width=16, seed=3, batch_size=64)
    assert report == again
    assert vanishing_gradients("tanh", 4, width=16, seed=4, batch_size=64) != report

    # Rebuild independently: same seed → same weights and batch, then compare with autograd.
    images, labels, _ = load_images(DataConfig(name="digits"))
    chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(3))[:64]
    pixels = images.flatten(1).double()
    inputs = (pixels[chosen] - pixels.mean()) / pixels.std()
    torch.manual_seed(3)
    model = DeepStack(4, 16, "tanh").double()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    loss = F.cross_entropy(model(inputs), labels[chosen])
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    grads = torch.autograd.grad(loss, weights)
    assert report.loss == pytest.approx(loss.item(), rel=1e-12)
    for layer, weight, grad in zip(report.layers, weights, grads, strict=True):
        assert layer.grad_norm == pytest.approx(grad.norm().item(), rel=1e-12)
        assert layer.weight_norm == pytest.approx(weight.norm().item(), rel=1e-12)


def test_global_random_state_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    vanishing_gradients("relu", 2)
    assert torch.equal(torch.rand(3), expected)


def test_deepest_stack_stays_finite():
    report = vanishing_gradients("sigmoid", 50)
    assert len(report.layers) == 51
    assert all(math.isfinite(layer.grad_norm) for layer in report.layers)
    assert report.layers[0].grad_norm > 0  # float64: measured, not rounded to zero


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"activation": "softmax"}, "activation"),
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"init": "orthogonal"}, "init"),
        ({"batch_size": 5000}, "batch_size"),
    ],
)
def test_bad_settings_name_their_field(kwargs, field):
    with pytest.raises(CNNCoreError) as info:
        vanishing_gradients(**kwargs)
    assert info.value.field == field
