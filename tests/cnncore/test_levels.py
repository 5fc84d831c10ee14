"""Levels made later from held floats are the very bytes made at once; the budget comes back."""

import gc

import numpy as np
import pytest
import torch
from torch import nn

from cnncore.features import learned_feature_maps, trace_layers
from cnncore.images import sample_image
from cnncore.levels import HeldFloats, Scratch, layer_levels
from cnncore.pretrained import load_pretrained
from cnncore.weights import LoadedModel

BIG = 10**12


def assert_same_answer(later, now) -> None:
    """Name, type, shape, channels, tile shape, units and ranges (NaN equal to NaN)."""
    fields = ("name", "type", "shape", "channels", "tile_shape", "units", "channels_shown")
    assert [getattr(later, f) for f in fields] == [getattr(now, f) for f in fields]
    np.testing.assert_array_equal(np.array(later.ranges), np.array(now.ranges))


def outputs() -> list[tuple[str, torch.Tensor]]:
    """Layer outputs of every kind `layer_levels` treats apart: maps, more maps than shown,
    a constant map, units (a vector, channels of 1×1), one (h, w) map, non-finite values."""
    torch.manual_seed(5)
    constant = torch.randn(4, 6, 6)
    constant[2] = 1.5
    broken = torch.randn(3, 5, 5)
    broken[0, 1, 1], broken[2, 0, 0] = float("nan"), float("-inf")
    return [
        ("maps", torch.randn(8, 13, 11) * 4 - 1),
        ("many", torch.randn(70, 9, 9)),
        ("constant", constant),
        ("vector", torch.randn(1000)),
        ("pixels", torch.randn(120, 1, 1)),
        ("single", torch.randn(7, 7)),
        ("broken", broken),
    ]


@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
@pytest.mark.parametrize(("name", "output"), outputs(), ids=[n for n, _ in outputs()])
def test_deferred_levels_are_the_bytes_made_at_once(name, output, normalise):
    now = layer_levels(name, "Conv2d", output, normalise=normalise, max_channels=64)
    budget = HeldFloats(BIG)
    later = layer_levels(name, "Conv2d", output, normalise=normalise, max_channels=64,
                         deferred=budget)  # fmt: skip
    assert later.deferred and not now.deferred
    assert budget.held == output.untyped_storage().nbytes() or later.units
    # what an answer reads is there before the levels are made
    assert_same_answer(later, now)
    assert later.tile_shape == now.levels.shape and later.nbytes == now.levels.nbytes
    assert later.deferred
    np.testing.assert_array_equal(later.levels, now.levels)
    assert later.levels.dtype == np.uint8 and not later.deferred
    assert budget.held == 0  # the floats were given back


def test_a_shared_scratch_buffer_makes_the_same_deferred_levels():
    budget, scratch = HeldFloats(BIG), Scratch()
    held = [layer_levels(n, "Conv2d", o, deferred=budget) for n, o in outputs()]
    for layer in held:
        layer.settle(scratch)
    for layer, (name, output) in zip(held, outputs(), strict=True):
        np.testing.assert_array_equal(layer.levels, layer_levels(name, "Conv2d", output).levels)
    assert budget.held == 0


def test_over_the_budget_levels_are_made_at_once():
    output = torch.randn(4, 10, 10)
    size = output.untyped_storage().nbytes()
    budget = HeldFloats(size + size // 2)
    first = layer_levels("a", "Conv2d", output, deferred=budget)
    second = layer_levels("b", "Conv2d", output.clone(), deferred=budget)
    assert first.deferred and not second.deferred and budget.held == size
    np.testing.assert_array_equal(second.levels, first.levels)
    assert budget.held == 0
    with torch.inference_mode():  # no version counter: changes could not be told, so never held
        inference = layer_levels("c", "Conv2d", torch.randn(4, 10, 10), deferred=budget)
    assert not inference.deferred


def test_an_in_place_change_is_told_and_the_floats_can_be_given_back_unmade():
    output = torch.randn(4, 10, 10)
    budget = HeldFloats(BIG)
    layer = layer_levels("conv", "Conv2d", output, deferred=budget)
    assert not layer.overwritten
    output.relu_()  # what a later ReLU(inplace=True) does to a conv's output
    assert layer.overwritten
    layer.let_go()
    assert budget.held == 0 and not layer.deferred


def test_floats_of_levels_never_made_come_back_when_the_layer_is_dropped():
    budget = HeldFloats(BIG)
    layer = layer_levels("conv", "Conv2d", torch.randn(4, 10, 10), deferred=budget)
    assert budget.held > 0
    del layer
    gc.collect()
    assert budget.held == 0


def assert_same_maps(later, now) -> None:
    assert [layer.name for layer in later.layers] == [layer.name for layer in now.layers]
    for held, made in zip(later.layers, now.layers, strict=True):
        assert_same_answer(held, made)
        np.testing.assert_array_equal(held.levels, made.levels)


@pytest.mark.parametrize("name", ["tinyvgg", "resnet18"])
@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
def test_deferred_feature_maps_equal_the_eager_ones(name, normalise):
    loaded = load_pretrained(name)
    layers = trace_layers(loaded.model)
    picture = sample_image("china")
    now = learned_feature_maps(loaded, layers, picture, normalise=normalise)
    budget = HeldFloats(BIG)
    later = learned_feature_maps(loaded, layers, picture, normalise=normalise, deferred=budget)
    assert all(layer.deferred for layer in later.layers) and budget.held > 0
    assert later.nbytes == now.nbytes  # a result is charged for its levels, made or not
    later.settle()
    assert budget.held == 0
    assert_same_maps(later, now)


class _InPlace(nn.Module):
    """A conv whose output a ReLU(inplace=True) overwrites, then more layers."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def test_an_in_place_layer_makes_every_level_at_once_with_the_values_before_it():
    torch.manual_seed(2)
    weights = load_pretrained("tinyvgg").weights
    model = _InPlace(len(weights.labels)).eval()
    loaded = LoadedModel("inplace", model, weights)
    layers = trace_layers(model)
    picture = sample_image("circle")
    budget = HeldFloats(BIG)
    later = learned_feature_maps(loaded, layers, picture, deferred=budget)
    assert budget.held == 0 and not any(layer.deferred for layer in later.layers)
    conv = later.layers[0]
    assert conv.name == "conv" and conv.ranges[0][0] < 0  # before the ReLU overwrote it
    assert_same_maps(later, learned_feature_maps(loaded, layers, picture))
