"""Effective receptive fields (Luo et al., NeurIPS 2016) against per-sample autograd, the exact
n-fold box blur of a uniform stack, and the √n / exponential growth laws."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnncore.effective_rf import (
    STACK_CHANNELS,
    STACK_SIDE,
    StackConfig,
    conv_stack,
    depth_sweep,
    effective_receptive_field,
    gaussian_fit,
    mass_share,
    model_effective_field,
    stack_effective_field,
)
from cnncore.errors import CNNCoreError
from cnncore.receptive_field import Box


def small_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3, padding=1),
    )


def test_batched_backward_equals_a_loop_over_inputs():
    model = small_net()
    with torch.no_grad():  # batch norm statistics that are not the identity
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.train()  # the ERF must use eval mode, and give the model back in its own mode
    erf = effective_receptive_field(model, (2, 20, 18), "5", 2, 3, samples=6, seed=11)
    assert model.training and all(m.training for m in model.modules())
    inputs = torch.randn(6, 2, 20, 18, generator=torch.Generator().manual_seed(11))
    model.eval()
    expected = torch.zeros(20, 18)
    for sample in inputs:
        x = sample[None].clone().requires_grad_(True)
        model[:6](x)[0, :, 2, 3].sum().backward()
        expected += x.grad[0].abs().sum(0) / 6
    torch.testing.assert_close(erf.heatmap, expected / expected.max())
    assert erf.samples == 6 and (erf.y, erf.x) == (2, 3)


def test_gradient_stays_inside_the_theoretical_field():
    erf = effective_receptive_field(small_net(), (2, 24, 24), samples=4)
    box = erf.theoretical.clipped_box
    inside = torch.zeros(24, 24, dtype=torch.bool)
    inside[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = True
    assert erf.heatmap[~inside].abs().max() == 0
    assert erf.heatmap[inside].max() == 1
    assert 0 < erf.share_95 <= 1 and erf.pixels_95 <= box.area


def test_given_image_is_one_sample():
    model = small_net().eval()
    image = torch.rand(2, 16, 16)
    erf = effective_receptive_field(model, (2, 16, 16), "4", 1, 1, image=image)
    x = image[None].clone().requires_grad_(True)
    model[:5](x)[0, :, 1, 1].sum().backward()
    grad = x.grad[0].abs().sum(0)
    torch.testing.assert_close(erf.heatmap, grad / grad.max())
    assert erf.samples == 1
    with pytest.raises(CNNCoreError) as exc:
        effective_receptive_field(model, (2, 16, 16), image=torch.rand(2, 16, 15))
    assert exc.value.field == "image"


def box_blur_power(depth: int, size: int) -> torch.Tensor:
    """[1, 1, 1]/3 convolved with itself `depth` times, centred in `size` cells."""
    kernel = torch.ones(1, 1, 3, dtype=torch.float64) / 3
    signal = torch.zeros(1, 1, size, dtype=torch.float64)
    signal[..., size // 2] = 1
    for _ in range(depth):
        signal = F.conv1d(signal, kernel, padding=1)
    return signal[0, 0]


@pytest.mark.parametrize("depth", [1, 4, 9])
def test_uniform_stack_is_an_n_fold_box_blur(depth):
    """A linear stack of uniform 3×3 convs: the ERF is the separable n-fold box blur, σ² = 2n/3."""
    erf = stack_effective_field(StackConfig(depth), 32, 32, samples=2)
    profile = box_blur_power(depth, 32)
    expected = torch.outer(profile, profile)
    torch.testing.assert_close(
        erf.heatmap.double(), expected / expected.max(), atol=1e-6, rtol=1e-5
    )
    assert erf.fit.sigma_y == pytest.approx(math.sqrt(2 * depth / 3))
    assert erf.fit.centre_x == pytest.approx(16)


def test_sigma_grows_like_square_root_of_depth():
    sweep = depth_sweep(StackConfig(16), samples=1)
    sigma = {p.depth: p.fit.sigma_y for p in sweep.points}
    assert sigma[16] / sigma[4] == pytest.approx(2, rel=1e-6)
    assert sweep.erf_exponent == pytest.approx(0.5, abs=1e-3)
    size = {p.depth: p.theoretical_size for p in sweep.points}
    assert all(size[n] == 2 * n + 1 for n in size)  # the theoretical field grows linearly
    shares = [p.share_95 for p in sweep.points]
    assert all(a > b for a, b in zip(shares[1:], shares[2:], strict=False))  # a shrinking part


def test_random_relu_stacks_grow_like_square_root_too():
    """Luo et al. Fig. 1: with random weights and ReLU the ERF is noisier, still ~√n.
    Averaged over 3 weight draws of 16 inputs each, σ(12)/σ(3) (≈ 2.3 here) is nearer the √n
    law's √4 = 2 than the theoretical field's linear 25/7 ≈ 3.6."""
    ratios, exponents = [], []
    for seed in range(3):
        config = StackConfig(12, activation="relu", weights="random")
        sweep = depth_sweep(config, size=32, samples=16, seed=seed)
        sigma = {p.depth: (p.fit.sigma_y + p.fit.sigma_x) / 2 for p in sweep.points}
        ratios.append(sigma[12] / sigma[3])
        exponents.append(sweep.erf_exponent)
    assert not any(p.clipped for p in sweep.points)
    assert 1.6 < sum(ratios) / 3 < (2 + 25 / 7) / 2
    assert 0.35 < sum(exponents) / 3 < 0.75


def test_doubling_dilation_grows_exponentially():
    """Dilations 1, 2, 4, ...: r = 2^(n+1) − 1, and σ² = (2/3)·Σ 4^i, so σ doubles per layer."""
    sweep = depth_sweep(StackConfig(6, growth="doubling"), size=256, samples=1)
    for point in sweep.points:
        n = point.depth
        assert point.theoretical_size == 2 ** (n + 1) - 1
        assert point.fit.sigma_y == pytest.approx(math.sqrt(2 / 3 * (4**n - 1) / 3))
    sigma = [p.fit.sigma_y for p in sweep.points]
    assert sigma[-1] / sigma[-2] == pytest.approx(2, rel=0.01)


def test_gaussian_fit_and_mass_share():
    ys, xs = torch.meshgrid(torch.arange(41.0), torch.arange(61.0), indexing="ij")
    blob = torch.exp(-((ys - 20) ** 2) / (2 * 3.0**2) - (xs - 30) ** 2 / (2 * 5.0**2))
    fit = gaussian_fit(blob)
    assert (fit.centre_y, fit.centre_x) == (pytest.approx(20), pytest.approx(30))
    assert (fit.sigma_y, fit.sigma_x) == (pytest.approx(3, rel=1e-3), pytest.approx(5, rel=1e-3))
    delta = torch.zeros(9, 9)
    delta[4, 4] = 2
    assert mass_share(delta, Box(0, 8, 0, 8)) == (1, 1 / 81)
    flat = torch.ones(10, 10)
    assert mass_share(flat, Box(0, 9, 0, 9)) == (95, 0.95)
    assert gaussian_fit(torch.zeros(3, 3)).sigma_x == 0


def numpy_marginals(heatmap: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    mass = heatmap.numpy().astype(np.float64)
    shares = mass / mass.sum()
    return shares.sum(axis=1), shares.sum(axis=0)


@pytest.mark.parametrize("shape", [(1, 1), (5, 9), (40, 36), (224, 160)])
def test_fit_carries_the_row_and_column_shares_its_moments_use(shape):
    heatmap = torch.rand(shape, generator=torch.Generator().manual_seed(shape[0]))
    fit = gaussian_fit(heatmap)
    rows, columns = numpy_marginals(heatmap)
    assert isinstance(fit.rows, tuple) and isinstance(fit.columns, tuple)
    np.testing.assert_allclose(fit.rows, rows, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fit.columns, columns, rtol=1e-12, atol=0)
    assert math.fsum(fit.rows) == pytest.approx(1, abs=1e-12)
    index_y, index_x = np.arange(shape[0]), np.arange(shape[1])
    assert fit.centre_y == pytest.approx((rows * index_y).sum(), rel=1e-12, abs=1e-12)
    assert fit.centre_x == pytest.approx((columns * index_x).sum(), rel=1e-12, abs=1e-12)
    sigma_x = math.sqrt((columns * (index_x - fit.centre_x) ** 2).sum())
    assert fit.sigma_x == pytest.approx(sigma_x, rel=1e-9, abs=1e-12)


def test_no_mass_has_zero_shares():
    fit = gaussian_fit(torch.zeros(3, 4))
    assert fit.rows == (0.0,) * 3 and fit.columns == (0.0,) * 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"depth": 0}, "depth"),
        ({"depth": 2, "kernel": 4}, "kernel"),
        ({"depth": 2, "activation": "swish"}, "activation"),
        ({"depth": 2, "growth": "x"}, "growth"),
        ({"depth": 2, "weights": "zeros"}, "weights"),
        ({"depth": 2, "dilation": 0}, "dilation"),
    ],
)
def test_stack_errors_name_their_field(kwargs, field):
    with pytest.raises(CNNCoreError) as exc:
        StackConfig(**kwargs)
    assert exc.value.field == field


def test_sample_count_is_checked():
    with pytest.raises(CNNCoreError) as exc:
        effective_receptive_field(small_net(), (2, 16, 16), samples=0)
    assert exc.value.field == "samples"
    with pytest.raises(CNNCoreError) as exc:
        depth_sweep(StackConfig(3), samples=0)
    assert exc.value.field == "samples"


def test_costs_and_sizes_are_bounded():
    with pytest.raises(CNNCoreError) as exc:  # 4·4·9·64·64 MACs per layer per sample
        stack_effective_field(StackConfig(4), 64, 64, samples=10, max_macs=4 * 589_824 * 9)
    assert exc.value.field == "samples"
    stack_effective_field(StackConfig(4), 64, 64, samples=9, max_macs=4 * 589_824 * 9)
    with pytest.raises(CNNCoreError) as exc:  # dilation 32 spans 65 pixels of a 48-pixel input
        depth_sweep(StackConfig(6, growth="doubling"), size=48)
    assert exc.value.field == "depth"
    with pytest.raises(CNNCoreError) as exc:
        model_effective_field("resnet18", samples=16, max_macs=10**9)
    assert exc.value.field == "samples"


def test_zoo_model_with_seeded_initial_weights():
    first = model_effective_field("lenet5", samples=4, seed=5)
    again = model_effective_field("lenet5", samples=4, seed=5)
    other = model_effective_field("lenet5", samples=4, seed=6)
    assert first.weights == "initialisation" and first.field.input_shape == (1, 32, 32)
    assert first.field.layer == "features.5"
    torch.testing.assert_close(first.field.heatmap, again.field.heatmap)
    assert not torch.equal(first.field.heatmap, other.field.heatmap)
    box = first.field.theoretical.clipped_box
    assert first.field.heatmap[: box.y0].abs().max() == 0  # nothing outside the field
    with pytest.raises(CNNCoreError) as exc:
        model_effective_field("lenet5", weights="pretrained")
    assert exc.value.field == "weights"


def test_trained_weights_are_used_when_bundled():
    trained = model_effective_field("lenet5", samples=2, weights="trained")
    assert trained.weights == "trained"
    with pytest.raises(CNNCoreError) as exc:  # its classifier is sized for 32×32
        model_effective_field("lenet5", 40, 40, weights="trained")
    assert exc.value.field == "height"


def test_random_stacks_are_seeded():
    config = StackConfig(3, activation="relu", weights="random")
    first, again, other = conv_stack(config, 1), conv_stack(config, 1), conv_stack(config, 2)
    assert torch.equal(first[0].weight, again[0].weight)
    assert not torch.equal(first[0].weight, other[0].weight)
    assert [type(m).__name__ for m in first] == ["Conv2d", "ReLU"] * 3
    doubling = conv_stack(StackConfig(3, growth="doubling", kernel=5))
    assert [m.dilation for m in doubling] == [(1, 1), (2, 2), (4, 4)]
    assert [m.padding for m in doubling] == [(2, 2), (4, 4), (8, 8)]


# --- no tracing inside a request -----------------------------------------------------------------


def test_known_architectures_are_not_traced_again(monkeypatch):
    """torch.fx patches nn.Module.__call__ process-wide while it traces: a trace during one
    request breaks the forward passes of the others. Zoo models and stacks reuse one trace."""
    from cnncore import effective_rf
    from cnncore.effective_rf_picture import picture_effective_field
    from cnncore.images import sample_image
    from cnncore.weights import load_model

    trained = load_model("lenet5")
    calls = [
        lambda: model_effective_field("tinyvgg", samples=1, seed=2),
        lambda: picture_effective_field(trained, sample_image("digit"), "features.3", 1, 1),
        lambda: stack_effective_field(StackConfig(3), 12, 12, samples=1),
        lambda: depth_sweep(StackConfig(3), 12, samples=1),
    ]
    first = [call() for call in calls]  # the first use of each geometry traces it, once

    def refuse(*_args):
        raise AssertionError("traced inside a request")

    monkeypatch.setattr(effective_rf, "trace_receptive_fields", refuse)
    again = [call() for call in calls]
    for a, b in zip(first[:3], again[:3], strict=True):
        field_a = getattr(a, "field", a)
        field_b = getattr(b, "field", b)
        assert torch.equal(field_a.heatmap, field_b.heatmap)
    assert again[3].points == first[3].points


def test_a_model_with_other_layers_is_traced_itself():
    """A zoo name whose layers differ (here one more) must not run the zoo's graph."""
    from cnncore.effective_rf import _fits
    from cnncore.models import build_model
    from cnncore.receptive_field import model_field_graph

    geometry = model_field_graph("lenet5", 1, 32, 32)
    model = build_model("lenet5")
    assert _fits(model, geometry)
    model.features.append(nn.Identity())
    assert not _fits(model, geometry)
    model = build_model("lenet5")
    model.features[1] = nn.ReLU()  # tanh → ReLU: same paths, another class
    assert not _fits(model, geometry)
    erf = effective_receptive_field(model, (1, 32, 32), "features.3", 2, 2, samples=2,
                                    geometry=geometry)  # fmt: skip
    assert erf.layer == "features.3"


def test_forward_passes_in_other_threads_survive_concurrent_requests():
    import threading

    errors: list[str] = []

    def run(call):
        for _ in range(3):
            try:
                call()
            except Exception as exc:  # any failure is the bug this test is about
                errors.append(repr(exc))

    calls = [
        lambda: depth_sweep(StackConfig(6), 24, samples=2),
        lambda: model_effective_field("tinyvgg", samples=1),
    ]
    for call in calls:
        call()  # geometries traced before the threads start
    threads = [threading.Thread(target=run, args=(call,)) for call in calls * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_stack_without_a_size_takes_the_default_side():
    square = stack_effective_field(StackConfig(2), samples=1)
    assert square.input_shape == (STACK_CHANNELS, STACK_SIDE, STACK_SIDE)
    assert square.heatmap.shape == (STACK_SIDE, STACK_SIDE)
    assert (square.y, square.x) == (STACK_SIDE // 2, STACK_SIDE // 2)  # the centre unit
    tall = stack_effective_field(StackConfig(2), 20, samples=1)
    assert tall.input_shape == (STACK_CHANNELS, 20, STACK_SIDE)
