"""Ranges derived from the layer before (ReLU, covering max pooling) equal the computed ones."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnncore.derived_ranges import Derivation, derived_bounds, windows_cover
from cnncore.features import learned_feature_maps, trace_layers
from cnncore.images import sample_image
from cnncore.levels import layer_levels
from cnncore.pretrained import load_pretrained
from cnncore.weights import load_model

NAN, INF = float("nan"), float("inf")


def inputs() -> list[tuple[str, torch.Tensor]]:
    """Maps a ReLU or a pooling may read: mixed signs, all-negative maps, all-positive maps,
    NaN and ±∞, more channels than shown, units (a vector, channels of 1×1), one (h, w) map."""
    torch.manual_seed(11)
    mixed = torch.randn(6, 12, 10) * 3 - 0.5
    mixed[1] = -mixed[1].abs() - 0.1  # every value negative: the ReLU's map is all zero
    mixed[2] = mixed[2].abs() + 0.2  # every value positive: the ReLU changes nothing
    broken = torch.randn(5, 8, 8)
    broken[0, 3, 4], broken[1, 0, 0], broken[2, 7, 7] = NAN, -INF, INF
    broken[3] = -INF
    negative = -torch.rand(1000) - 0.01
    return [
        ("mixed", mixed),
        ("broken", broken),
        ("many", torch.randn(70, 6, 6)),
        ("vector", torch.randn(1000)),
        ("negative_vector", negative),
        ("pixels", torch.randn(80, 1, 1)),
        ("single", torch.randn(9, 9)),
    ]


def assert_same_levels(derived, computed) -> None:
    """Same ranges (NaN equal to NaN, −0.0 equal to 0.0) and the very same level bytes."""
    np.testing.assert_array_equal(np.array(derived.ranges), np.array(computed.ranges))
    np.testing.assert_array_equal(derived.levels, computed.levels)


@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
@pytest.mark.parametrize(("name", "x"), inputs(), ids=[n for n, _ in inputs()])
def test_relu_ranges_follow_from_its_input(name, x, normalise):
    source = layer_levels("conv", "Conv2d", x, normalise=normalise, max_channels=64)
    output = torch.relu(x)
    low, high = derived_bounds(Derivation("relu", "conv"), source.shape, source.ranges, output)
    assert low is not None and high is not None
    computed = layer_levels("relu", "ReLU", output, normalise=normalise, max_channels=64)
    derived = layer_levels("relu", "ReLU", output, normalise=normalise, max_channels=64,
                           low=low, high=high)  # fmt: skip
    assert_same_levels(derived, computed)
    if name == "mixed" and normalise == "per_channel":  # the all-negative map: range (0, 0)
        assert derived.ranges[1] == (0.0, 0.0) and derived.ranges[2] == source.ranges[2]
    if name == "broken" and normalise == "per_channel":
        assert np.isnan(derived.ranges[0][0]) and derived.ranges[1][0] == 0.0
        assert derived.ranges[2][1] == INF and derived.ranges[3] == (0.0, 0.0)


POOLS = [  # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 0, 1, True),
    (2, 1, 0, 2, False),
    (2, 3, 0, 1, False),  # every third cell unread: its highest value must be computed
]


@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
@pytest.mark.parametrize("pool", POOLS, ids=[str(p) for p in POOLS])
@pytest.mark.parametrize("name", ["mixed", "broken", "many"])
def test_a_covering_max_pool_keeps_its_inputs_highest_value(name, pool, normalise):
    x = dict(inputs())[name]
    kernel, stride, padding, dilation, ceil_mode = pool
    output = F.max_pool2d(x[None], kernel, stride, padding, dilation, ceil_mode)[0]
    source = layer_levels("relu", "ReLU", x, normalise=normalise, max_channels=64)
    rule = Derivation("max_pool", "relu", ((kernel,) * 2, (stride,) * 2, (padding,) * 2,
                                           (dilation,) * 2))  # fmt: skip
    low, high = derived_bounds(rule, source.shape, source.ranges, output)
    covered = all(
        windows_cover(size, out, kernel, stride, padding, dilation)
        for size, out in zip(x.shape[1:], output.shape[1:], strict=True)
    )
    assert low is None and (high is not None) == covered
    computed = layer_levels("pool", "MaxPool2d", output, normalise=normalise, max_channels=64)
    derived = layer_levels("pool", "MaxPool2d", output, normalise=normalise, max_channels=64,
                           high=high)  # fmt: skip
    assert_same_levels(derived, computed)


@pytest.mark.parametrize("size", range(1, 12))
@pytest.mark.parametrize("pool", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 3, 0, 1), (2, 3, 0, 1),
                                  (2, 1, 0, 3), (3, 2, 1, 2), (1, 2, 0, 1)])  # fmt: skip
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_windows_cover_agrees_with_torch_pooling_each_cell_alone(size, pool, ceil_mode):
    kernel, stride, padding, dilation = pool
    if padding > kernel // 2 or (size + 2 * padding < dilation * (kernel - 1) + 1):
        pytest.skip("torch refuses this pooling")
    # cell c is read by some window exactly when a lone 1 there reaches the output
    lone = torch.eye(size)[:, None, :] * 2 - 1  # size × 1 × size, 1 at c, −1 elsewhere
    pooled = F.max_pool1d(lone, kernel, stride, padding, dilation, ceil_mode)
    expected = bool((pooled.amax(dim=(1, 2)) == 1).all())
    assert windows_cover(size, pooled.shape[-1], kernel, stride, padding, dilation) == expected


def test_other_shapes_are_left_to_be_computed():
    relu, pool = Derivation("relu", "a"), Derivation("max_pool", "a", ((2, 2), (2, 2), (0, 0),
                                                                         (1, 1)))  # fmt: skip
    ranges = ((0.0, 1.0),) * 4
    assert derived_bounds(relu, (4, 6, 6), ranges, torch.zeros(4, 6, 5)) == (None, None)
    assert derived_bounds(pool, (4, 6, 6), ranges, torch.zeros(3, 3, 3)) == (None, None)
    assert derived_bounds(pool, (4, 2, 2), ranges, torch.zeros(4, 1, 1)) == (None, None)
    assert derived_bounds(pool, (4, 7, 7), ranges, torch.zeros(4, 3, 3)) == (None, None)


def test_the_graph_names_relus_and_pools_that_read_a_layer():
    layers = trace_layers(load_pretrained("tinyvgg").model)
    assert layers.derived["block1.relu1"] == Derivation("relu", "block1.conv1")
    assert layers.derived["block1.pool"].rule == "max_pool"
    assert layers.derived["block1.pool"].source == "block1.relu2"
    assert not any(name.endswith("conv1") for name in layers.derived)


@pytest.mark.parametrize("name", ["tinyvgg", "resnet18", "alexnet"])
@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
def test_feature_maps_with_derived_ranges_equal_computed_ones(name, normalise, tmp_path):
    # alexnet: seeded initialisation (no weights in an empty folder); 3×3 pools, stride 2
    loaded = load_pretrained(name) if name != "alexnet" else load_model(name, directory=tmp_path)
    layers = trace_layers(loaded.model)
    assert layers.derived
    computed = dataclasses.replace(layers, derived={})
    picture = sample_image("china")
    got = learned_feature_maps(loaded, layers, picture, normalise=normalise)
    expected = learned_feature_maps(loaded, computed, picture, normalise=normalise)
    for derived, made in zip(got.layers, expected.layers, strict=True):
        assert derived.name == made.name
        assert_same_levels(derived, made)
