"""A unit written out equals the captured activation: every layer type of every zoo model, and
a float64 network with the convolution and pooling variants the zoo lacks, against torch."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.features import capture_layers, trace_layers
from cnncore.models import list_models
from cnncore.unit import INPUT, ActivationCollector, capture_activations, unit_computation
from cnncore.weights import load_model


def _random_units(shape: tuple[int, ...], rng: random.Random, count: int):
    for _ in range(count):
        if len(shape) == 3:
            yield rng.randrange(shape[0]), rng.randrange(shape[1]), rng.randrange(shape[2])
        else:
            yield rng.randrange(int(np.prod(shape))), 0, 0


@pytest.mark.parametrize("name", list_models())
def test_every_layer_of_every_zoo_model_adds_up_to_the_captured_value(name: str) -> None:
    torch.manual_seed(0)
    loaded = load_model(name)
    layers = trace_layers(loaded.model)
    acts = capture_activations(layers, torch.randn(1, *loaded.weights.input_shape))
    rng = random.Random(name)
    kinds = set()
    for layer in layers.layer_names:
        out = acts.values[layer]
        # relative to the unit, or to the layer's typical size where the terms cancel to ~0
        scale = max(float(out.double().pow(2).mean().sqrt()), 1e-12)
        for c, y, x in _random_units(tuple(out.shape), rng, 4):
            unit = unit_computation(layers, acts, layer, c, y, x)
            kinds.add(unit.kind)
            assert unit.value == pytest.approx(float(out.reshape(-1)[c] if out.dim() == 1
                                                     else out[c, y, x]))  # fmt: skip
            assert abs(unit.total - unit.value) <= 1e-5 * max(abs(unit.value), scale), (layer, c)
    expected = {
        "lenet5": {"conv", "activation", "avg_pool", "flatten", "linear"},
        "resnet18": {
            "conv",
            "batch_norm",
            "activation",
            "max_pool",
            "avg_pool",
            "add",
            "identity",
            "flatten",
            "linear",
        },
        "googlenet": {"concat", "max_pool"},
        "autoencoder": {"conv_transpose"},
    }
    assert expected.get(name, set()) <= kinds  # fmt: skip


class _Variants(nn.Module):
    """Strided, padded, dilated, grouped, depthwise, 1×1 and 'same' convolutions; every pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=3, dilation=2, groups=2)
        self.depthwise = nn.Conv2d(6, 6, (3, 2), padding=(1, 0), groups=6, bias=False)
        self.pointwise = nn.Conv2d(6, 8, 1)
        self.same = nn.Conv2d(8, 8, 4, padding="same", dilation=2)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.LeakyReLU(0.2)
        self.gelu = nn.GELU()
        self.avg = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.avg_pad = nn.AvgPool2d(2, 1, padding=1, count_include_pad=True)
        self.max = nn.MaxPool2d(2, 2, padding=1, dilation=2, ceil_mode=True)
        self.adaptive = nn.AdaptiveAvgPool2d((3, 5))
        self.adaptive_max = nn.AdaptiveMaxPool2d(2)
        self.up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16 * 3 * 5, 5)

    def forward(self, x):  # noqa: ANN001, ANN201, D102
        a = self.gelu(self.act(self.bn(self.same(self.pointwise(self.depthwise(self.conv(x)))))))
        self.up(self.avg(a) + self.max(a) + self.avg_pad(a)[:, :, ::2, ::2])
        pooled = torch.cat([self.adaptive(a), F.pad(self.adaptive_max(a), (0, 3, 0, 1))], 1)
        return self.fc(self.flat(pooled))


def test_variants_match_torch_in_float64() -> None:
    torch.manual_seed(1)
    model = _Variants().double().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    layers = trace_layers(model)
    acts = capture_activations(layers, torch.randn(1, 4, 19, 17, dtype=torch.float64))
    written = 0
    for layer in layers.layer_names:
        if layers.types[layer] not in {
            "Conv2d", "BatchNorm2d", "LeakyReLU", "GELU", "AvgPool2d", "MaxPool2d",
            "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "ConvTranspose2d", "Flatten", "Linear",
            "cat",
        }:  # fmt: skip
            continue
        out = acts.values[layer]
        cells = np.ndindex(*out.shape) if out.dim() == 3 else ((i, 0, 0) for i in range(len(out)))
        for c, y, x in cells:
            unit = unit_computation(layers, acts, layer, c, y, x, max_channels=2, max_terms=3)
            assert unit.total == pytest.approx(unit.value, rel=1e-10, abs=1e-12), (layer, c, y, x)
            written += 1
    assert written > 1000


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(2)
    loaded = load_model("resnet18")
    layers = trace_layers(loaded.model)
    return layers, capture_activations(layers, torch.randn(1, 3, 64, 64))


def test_conv_terms_are_the_window_times_the_kernel(resnet18) -> None:
    layers, acts = resnet18
    unit = unit_computation(layers, acts, "conv1", 5, 0, 3, max_channels=2)
    d = unit.detail
    assert d.source == INPUT and d.stride == (2, 2) and d.padding == (3, 3)
    assert d.rows == tuple(range(-3, 4)) and d.cols == tuple(range(3, 10))
    assert d.padded[:3].all() and not d.padded[3:].any()  # rows −3..−1 are padding
    picture = acts.values[INPUT].double()
    for shown, c in enumerate(d.in_channels):
        np.testing.assert_allclose(d.window[shown][3:], picture[c, 0:4, 3:10].numpy())
        np.testing.assert_allclose(d.products[shown], d.window[shown] * d.kernel[shown])
    assert len(d.in_channels) == 2 and d.rest_channels == 1
    assert d.channel_sums.sum() + d.rest_sum + (d.bias or 0) == pytest.approx(unit.total)


def test_residual_operands_say_where_they_came_from(resnet18) -> None:
    layers, acts = resnet18
    identity = unit_computation(layers, acts, "layer1.0.add", 3, 2, 2).detail.operands
    assert [(o.source, o.role) for o in identity] == [
        ("layer1.0.bn2", "branch"), ("layer1.0.downsample", "identity")]  # fmt: skip
    projected = unit_computation(layers, acts, "layer2.0.add", 3, 1, 1).detail.operands
    assert [o.role for o in projected] == ["branch", "projection"]
    assert projected[1].value == pytest.approx(float(acts.values["layer2.0.downsample.1"][3, 1, 1]))


def test_the_logit_gets_its_softmax(resnet18) -> None:
    layers, acts = resnet18
    logits = acts.values["fc"].double()
    unit = unit_computation(layers, acts, "fc", 7, max_terms=5)
    assert unit.detail.softmax.probability == pytest.approx(float(torch.softmax(logits, 0)[7]))
    assert len(unit.detail.indices) == 5 and unit.detail.terms.rest_terms == 512 - 5
    biggest = (acts.values["flatten"].double() * layers.graph_module.fc.weight[7].double()).abs()
    assert set(unit.detail.indices) == set(torch.topk(biggest, 5).indices.tolist())


def test_max_pool_names_its_winner(resnet18) -> None:
    layers, acts = resnet18
    d = unit_computation(layers, acts, "maxpool", 4, 0, 5).detail
    i, j = d.winner
    assert d.inside[i, j] and d.window[i, j] == d.window[d.inside].max()


@pytest.mark.parametrize(
    ("args", "field"),
    [(("nope", 0, 0, 0), "layer"), (("conv1", 64, 0, 0), "channel"),
     (("conv1", 0, 32, 0), "y"), (("conv1", 0, 0, -1), "x"), (("fc", 1000, 0, 0), "channel"),
     (("fc", 0, 1, 0), "y")],
)  # fmt: skip
def test_units_outside_the_map_are_refused_by_field(resnet18, args, field) -> None:
    layers, acts = resnet18
    with pytest.raises(CNNCoreError) as refused:
        unit_computation(layers, acts, *args)
    assert refused.value.field == field


def test_partial_capture_keeps_the_wanted_layer_and_its_inputs(resnet18) -> None:
    layers, _ = resnet18
    picture = torch.randn(1, 3, 64, 64)
    partial = capture_activations(layers, picture, max_bytes=0, wanted=("layer2.0.add",
                                  "layer2.0.bn2", "layer2.0.downsample.1"))  # fmt: skip
    assert not partial.complete and partial.covers("layer2.0.add")
    assert not partial.covers("layer1.0.add")
    with pytest.raises(KeyError):
        unit_computation(layers, partial, "layer1.0.add", 0, 0, 0)
    full = capture_activations(layers, picture)
    assert unit_computation(layers, partial, "layer2.0.add", 1, 2, 3).total == pytest.approx(
        unit_computation(layers, full, "layer2.0.add", 1, 2, 3).total
    )


def test_an_addition_of_something_that_is_no_layer_is_refused_naming_layer() -> None:
    class _Broadcast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):  # noqa: ANN001, ANN201, D102
            return self.conv(x) + self.pool(self.conv(x))  # (2, h, w) + (2, 1, 1)

    layers = trace_layers(_Broadcast().eval())
    acts = capture_activations(layers, torch.randn(1, 1, 6, 6))
    with pytest.raises(CNNCoreError) as refused:
        unit_computation(layers, acts, "add", 0, 1, 1)
    assert refused.value.field == "layer" and refused.value.code == "unit_unsupported"


class _InPlace(nn.Module):
    """A layer's output overwritten later by an in-place module and by an in-place method
    (`+=` is traced as an out-of-place `+`)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(3, 3, 1)

    def forward(self, x):  # noqa: ANN001, ANN201, D102
        y = self.relu(self.conv(x))
        z = self.conv2(y)
        z += y
        return z.tanh_()


def _hooked_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each module's output cloned the moment it is made (before anything overwrites it)."""
    seen = {}
    for name in ("conv", "relu", "conv2"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out[0].clone())
        )
    with torch.no_grad():
        model(x)
    return seen


def test_outputs_that_a_later_in_place_layer_overwrites_are_kept_as_they_were_made() -> None:
    torch.manual_seed(3)
    model = _InPlace().eval()
    x = torch.randn(1, 2, 5, 5)
    layers = trace_layers(model)
    collector = ActivationCollector()
    collector(None, x)
    capture_layers(layers, x, collector, versioned=True)
    overwritten = collector.activations(layers)  # held without copies: conv, add were changed
    assert collector.overwritten and not overwritten.complete
    assert set(layers.layer_names) - set(overwritten.values) == {"conv", "add"}
    acts = capture_activations(layers, x)  # so it runs again, copying
    assert acts.complete
    for name, expected in _hooked_outputs(model, x).items():
        assert torch.equal(acts.values[name], expected), name
    assert not torch.equal(acts.values["conv"], acts.values["relu"])  # the conv had negatives


def test_outputs_no_layer_overwrites_are_held_without_a_copy(resnet18) -> None:
    layers, _ = resnet18
    held: dict[str, torch.Tensor] = {}
    collector = ActivationCollector()

    def keep(name: str, value: torch.Tensor) -> None:
        held[name] = value
        collector(name, value)

    capture_layers(layers, torch.randn(1, 3, 64, 64), keep, versioned=True)
    acts = collector.activations(layers)
    assert acts.complete and not collector.overwritten
    shared = [n for n in held if acts.values[n].data_ptr() == held[n].data_ptr()]
    assert shared == list(held)  # every layer is the tensor the forward pass made
