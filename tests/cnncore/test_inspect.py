"""Summaries against torch: MACs against torch's FLOP counter, shapes against the forward pass."""

from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncore.errors import CNNCoreError
from cnncore.inspect import (
    curriculum_cost_comparisons,
    layer_macs,
    separable_comparison,
    summarize,
    summarize_model,
)
from cnncore.models import UnknownModelError, build_model, get_model, list_models
from cnncore.models.layers import spatial_output_size


def torch_macs(model: nn.Module, input_shape) -> int:
    """MACs by torch's own counter (it counts 2 FLOPs per multiply-accumulate, no bias)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize("name", list_models())
def test_totals_match_torch(name):
    summary = summarize_model(name)
    model = build_model(name, device="meta")
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert summary.total_params == sum(row.params for row in summary.layers)
    assert summary.total_macs == sum(row.macs for row in summary.layers)
    assert summary.total_macs == torch_macs(model, summary.input_shape)
    leaves = {n for n, m in model.named_modules() if next(m.children(), None) is None}
    assert {row.name for row in summary.layers} == leaves


@pytest.mark.parametrize(
    "name", ["alexnet", "resnet50", "googlenet", "mobilenet_v1", "autoencoder"]
)
def test_each_row_shape_agrees_with_arithmetic(name):
    summary = summarize_model(name, height=160, width=192)
    model = build_model(name, device="meta", input_size=(160, 192))
    for row in summary.layers:
        module = model.get_submodule(row.name)
        if row.output_shape is None:
            continue
        if len(row.output_shape) == 3:
            assert spatial_output_size(module, *row.input_shape[-2:]) == row.output_shape[-2:]
        # MACs of a single layer against torch's counter for that layer alone.
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            assert row.macs == torch_macs(module, row.input_shape), row.name
            assert row.macs == layer_macs(module, row.input_shape, row.output_shape)


def test_known_published_totals():
    """Widely quoted MAC counts at 224×224 (torchvision's model tables list these as GFLOPS)."""
    assert round(summarize_model("resnet18").total_macs / 1e9, 2) == 1.81
    assert round(summarize_model("vgg16").total_macs / 1e9, 2) == 15.47
    assert round(summarize_model("mobilenet_v1").total_macs / 1e6) == 569  # paper, Table 8
    assert summarize_model("lenet5").total_macs == 416_520


def test_branches_are_all_listed():
    resnet = summarize_model("resnet18")
    identity = resnet.layer("layer1.0.downsample")
    assert identity.type == "Identity" and identity.output_shape == (64, 56, 56)
    projection = resnet.layer("layer2.0.downsample.0")
    assert projection.output_shape == (128, 28, 28) and projection.stride == (2, 2)
    googlenet = summarize_model("googlenet")
    outputs = [
        googlenet.layer(f"inception3a.branch{i}").output_shape
        for i in ("1.conv", "2.1.conv", "3.1.conv", "4.1.conv")
    ]
    assert outputs == [(64, 28, 28), (128, 28, 28), (32, 28, 28), (32, 28, 28)]
    # The concatenation feeds the next module: 64 + 128 + 32 + 32 channels.
    assert googlenet.layer("inception3b.branch1.conv").input_shape == (256, 28, 28)


def test_aux_classifiers_listed_without_running():
    summary = summarize_model("googlenet", aux_logits=True)
    assert summary.total_params == 13_004_888
    aux = [row for row in summary.layers if row.name.startswith("aux")]
    assert aux and all(row.output_shape is None and row.macs == 0 for row in aux)
    assert summary.total_macs == summarize_model("googlenet").total_macs


def test_summary_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = get_model("resnet18").train()
    model.layer1.eval()  # mixed modes must come back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    summarize(model, (3, 32, 32))
    with pytest.raises(CNNCoreError):
        summarize(get_model("lenet5"), (1, 20, 20))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert modes == {name: m.training for name, m in model.named_modules()}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_failure_removes_hooks():
    model = get_model("alexnet")
    with pytest.raises(CNNCoreError) as err:
        summarize(model, (3, 224, 30))
    assert err.value.field == "width"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_shared_modules_and_tied_weights():
    relu = nn.ReLU()
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(conv, relu, nn.Conv2d(2, 2, 3, padding=1), relu)
    model[2].weight = conv.weight  # tied
    summary = summarize(model, (2, 5, 5))
    assert [row.name for row in summary.layers] == ["0", "1", "2", "1"]
    assert summary.total_params == sum(p.numel() for p in model.parameters()) == 36 + 2 + 2
    assert summary.total_macs == 2 * 25 * 2 * 2 * 9


@pytest.mark.parametrize(
    ("height", "width", "field"), [(40, 224, "height"), (224, 40, "width"), (20, 20, "height")]
)
def test_too_small_input_names_the_axis(height, width, field):
    with pytest.raises(CNNCoreError) as err:
        summarize_model("alexnet", height=height, width=width)
    assert err.value.field == field
    assert "too small" in str(err.value)


def test_bad_arguments():
    with pytest.raises(UnknownModelError):
        summarize_model("nope")
    with pytest.raises(CNNCoreError) as err:
        summarize_model("resnet18", channels=0)
    assert err.value.field == "channels"


def test_summaries_are_cached():
    assert summarize_model("vgg16", 3, 64, 64, 10) is summarize_model("vgg16", 3, 64, 64, 10)


# --- cost comparisons ------------------------------------------------------------------------


def test_curriculum_bottleneck_numbers():
    bottleneck, _ = curriculum_cost_comparisons()
    assert bottleneck.input_shape == (192, 28, 28) and bottleneck.output_shape == (32, 28, 28)
    assert bottleneck.standard.macs == 28 * 28 * 32 * 192 * 5 * 5 == 120_422_400
    assert [row.macs for row in bottleneck.factorised.layers] == [
        28 * 28 * 16 * 192,
        28 * 28 * 32 * 16 * 25,
    ]
    assert bottleneck.macs_ratio == Fraction(16, 32 * 25) + Fraction(16, 192)
    assert bottleneck.standard.params == 192 * 32 * 25
    assert bottleneck.factorised.params == 192 * 16 + 16 * 32 * 25
    direct = nn.Conv2d(192, 32, 5, padding=2, bias=False).to("meta")
    assert bottleneck.standard.macs == torch_macs(direct, (192, 28, 28))


def test_curriculum_separable_numbers():
    _, separable = curriculum_cost_comparisons()
    assert separable.input_shape == (512, 14, 14) and separable.output_shape == (512, 14, 14)
    assert separable.macs_ratio == Fraction(1, 512) + Fraction(1, 9)
    standard = nn.Conv2d(512, 512, 3, padding=1, bias=False).to("meta")
    assert separable.standard.macs == torch_macs(standard, (512, 14, 14))
    assert "1/512 + 1/3²" in separable.formula


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 12),
    out=st.integers(1, 12),
    kernel=st.sampled_from([1, 3, 5, 7]),
    size=st.integers(7, 16),
    stride=st.integers(1, 2),
)
def test_separable_ratio_is_one_over_n_plus_one_over_k_squared(channels, out, kernel, size, stride):
    model = nn.Sequential()
    model.add_module(
        "block",
        nn.Sequential(
            nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False),
            nn.Conv2d(channels, out, 1, bias=False),
        ),
    )
    comparison = separable_comparison(
        summarize(model.to("meta"), (channels, size, size)), "block", "test"
    )
    assert comparison.macs_ratio == Fraction(1, out) + Fraction(1, kernel * kernel)
    assert comparison.params_ratio == Fraction(1, out) + Fraction(1, kernel * kernel)
