"""The zoo: exact parameter counts, configurability, structure and traceability of every model."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.models import (
    UnknownModelError,
    build_model,
    get_model,
    get_model_info,
    list_models,
)
from cnncore.models.googlenet import INCEPTION_SETTINGS
from cnncore.models.layers import feature_map_size, spatial_output_size
from cnncore.models.mobilenet import (
    MOBILENET_V2_SETTING,
    InvertedResidual,
    make_divisible,
)
from cnncore.models.resnet import BasicBlock, Bottleneck

# At each model's default input and 1000 classes (10 for the small ones): torchvision's
# `sum(p.numel())` for those torchvision has, the papers' / hand decompositions for the rest
# (see each module's docstring).
REFERENCE_PARAMS = {
    "lenet5": 61_706,
    "tinyvgg": 19_920,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "googlenet": 6_624_904,
    "mobilenet_v1": 4_231_976,
    "mobilenet_v2": 3_504_872,
    "autoencoder": 9_569,
    "mlp": 266_610,
}
SMALL = ["lenet5", "tinyvgg", "autoencoder", "mlp"]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_input(model_name: str, channels=None, height=None, width=None) -> torch.Tensor:
    shape = get_model_info(model_name).default_input
    return torch.zeros(
        1, channels or shape.channels, height or shape.height, width or shape.width, device="meta"
    )


def test_every_registered_model_has_a_reference_count():
    assert list_models() == list(REFERENCE_PARAMS)


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_parameter_count_matches_reference(name):
    model = build_model(name, device="meta")
    assert count(model) == REFERENCE_PARAMS[name]
    info = get_model_info(name)
    expected_input = (
        (1, 32, 32)
        if name == "lenet5"
        else (3, 64, 64)
        if name == "tinyvgg"
        else (1, 28, 28)
        if name in ("autoencoder", "mlp")
        else (3, 224, 224)
    )
    assert info.default_input.as_tuple() == expected_input
    assert info.num_classes == (None if name == "autoencoder" else 10 if name in SMALL else 1000)
    assert info.title and info.paper and info.family


def test_googlenet_auxiliary_classifiers_and_paper_branch():
    assert count(build_model("googlenet", device="meta", aux_logits=True)) == 13_004_888
    # The paper's 5×5 third branch adds r·O·(25 − 9) weights per Inception module.
    extra = sum(red * out * 16 for (_, _, _, _, red, out, _) in INCEPTION_SETTINGS.values())
    assert count(build_model("googlenet", device="meta", branch3_kernel=5)) == 6_624_904 + extra
    with pytest.raises(CNNCoreError) as err:
        get_model("googlenet", branch3_kernel=4)
    assert err.value.field == "branch3_kernel"


def test_googlenet_aux_outputs_only_in_training():
    model = build_model("googlenet", device="meta", aux_logits=True, num_classes=7)
    x = meta_input("googlenet")
    assert model(x).shape == (1, 7)
    outputs = model.train()(x)
    assert [o.shape for o in outputs] == [(1, 7)] * 3


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_configurable_channels_classes_and_size(name):
    info = get_model_info(name)
    size = (40, 48) if name in ("lenet5", "tinyvgg", "autoencoder", "mlp") else (96, 128)
    model = build_model(name, device="meta", in_channels=2, num_classes=7, input_size=size)
    out = model(torch.zeros(1, 2, *size, device="meta"))
    expected = (1, 2, *size) if info.num_classes is None else (1, 7)
    assert tuple(out.shape) == expected


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_symbolic_trace_calls_every_leaf_once(name):
    """torch.fx sees every layer as a module call, each activation module used once."""
    model = build_model(name, device="meta")
    graph = torch.fx.symbolic_trace(model).graph
    called = [node.target for node in graph.nodes if node.op == "call_module"]
    leaves = [n for n, m in model.named_modules() if next(m.children(), None) is None]
    assert sorted(called) == sorted(leaves)
    # No parameterised or shape-changing layer hides in a functional call.
    functions = {
        getattr(node.target, "__name__", str(node.target))
        for node in graph.nodes
        if node.op in ("call_function", "call_method")
    }
    assert functions <= {"add", "cat"}
    assert not any(getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("name", SMALL + ["resnet18", "mobilenet_v2"])
def test_traced_module_computes_the_same_as_the_model(name):
    torch.manual_seed(0)
    size = (64, 64) if name in ("resnet18", "mobilenet_v2") else None
    model = get_model(name, input_size=size).eval()
    info = get_model_info(name).default_input
    x = torch.randn(2, info.channels, *(size or (info.height, info.width)))
    torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))


def test_unknown_model():
    with pytest.raises(UnknownModelError) as err:
        get_model("resnet1000")
    assert err.value.field == "model"
    assert "resnet18" in str(err.value)


@pytest.mark.parametrize(("size", "field"), [((28, 32), "height"), ((32, 20), "width")])
def test_lenet_too_small_names_the_axis(size, field):
    with pytest.raises(CNNCoreError) as err:
        get_model("lenet5", input_size=size)
    assert err.value.field == field


@pytest.mark.parametrize("value", [0, -3, True, 2.5])
def test_bad_channels_or_classes(value):
    with pytest.raises(CNNCoreError) as err:
        get_model("tinyvgg", in_channels=value)
    assert err.value.field == "channels"
    with pytest.raises(CNNCoreError) as err:
        get_model("mlp", num_classes=value)
    assert err.value.field == "num_classes"


# --- structure the curriculum names ---------------------------------------------------------


def test_resnet_blocks_and_identity_shortcuts():
    r18, r50 = get_model("resnet18"), build_model("resnet50", device="meta")
    assert BasicBlock.expansion == 1 and Bottleneck.expansion == 4
    assert isinstance(r18.layer1[0].downsample, nn.Identity)
    assert isinstance(r18.layer2[0].downsample, nn.Sequential)  # stride 2, 64 → 128
    assert isinstance(r50.layer1[0].downsample, nn.Sequential)  # 64 → 256 by expansion
    assert isinstance(r50.layer1[1].downsample, nn.Identity)
    assert r50.layer2[0].conv2.stride == (2, 2)  # v1.5: the stride sits on the 3×3
    assert [len(getattr(r50, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]


@pytest.mark.parametrize("block_path", ["layer1.0", "layer2.0"])
def test_residual_block_adds_its_shortcut(block_path):
    """With the residual branch silenced (last BN scaled to 0) a block outputs relu(shortcut(x))."""
    torch.manual_seed(1)
    model = get_model("resnet18").eval()
    block = model.get_submodule(block_path)
    x = torch.randn(1, block.conv1.in_channels, 16, 16)
    expected_full = F.relu(
        block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x))))) + block.downsample(x)
    )
    torch.testing.assert_close(block(x), expected_full)
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    torch.testing.assert_close(block(x), F.relu(block.downsample(x)))


def test_inverted_residual_is_linear_and_residual():
    torch.manual_seed(2)
    block = InvertedResidual(24, 24, stride=1, expand_ratio=6).eval()
    assert block.use_res_connect
    assert block.conv[0][0].out_channels == 144  # expansion t = 6
    assert block.conv[1][0].groups == 144  # depthwise
    # projection: conv + BN, no activation (linear bottleneck), named as torchvision's
    assert isinstance(block.conv[2], nn.Conv2d) and isinstance(block.conv[3], nn.BatchNorm2d)
    assert len(block.conv) == 4
    x = torch.randn(1, 24, 8, 8)
    nn.init.zeros_(block.conv[3].weight)
    nn.init.zeros_(block.conv[3].bias)
    torch.testing.assert_close(block(x), x)  # only the identity path is left, un-rectified
    assert not InvertedResidual(24, 32, stride=1, expand_ratio=6).use_res_connect


def test_mobilenet_v2_follows_its_setting_table():
    model = build_model("mobilenet_v2", device="meta")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == sum(n for _, _, n, _ in MOBILENET_V2_SETTING) == 17
    residual = sum(n - 1 for _, _, n, _ in MOBILENET_V2_SETTING)  # repeats keep the shape
    assert sum(b.use_res_connect for b in blocks) == residual
    assert (make_divisible(32 * 0.75), make_divisible(24 * 0.35), make_divisible(1280)) == (
        24,
        8,
        1280,
    )


def test_mobilenet_v1_is_depthwise_separable():
    model = build_model("mobilenet_v1", device="meta")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 27  # stem + 13 × (depthwise, pointwise)
    for depthwise, pointwise in zip(convs[1::2], convs[2::2], strict=True):
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
        assert depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)


# --- spatial arithmetic against torch ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["conv", "deconv", "max", "avg"]),
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
)
def test_spatial_output_size_agrees_with_torch(kind, size, kernel, stride, padding, dilation, ceil):
    if kind == "conv":
        module = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
    elif kind == "deconv":
        module = nn.ConvTranspose2d(1, 1, kernel, stride, padding, stride - 1, dilation=dilation)
    elif kind == "max":
        module = nn.MaxPool2d(kernel, stride, min(padding, kernel // 2), dilation, ceil_mode=ceil)
    else:
        module = nn.AvgPool2d(kernel, stride, min(padding, kernel // 2), ceil_mode=ceil)
    x = torch.zeros(1, 1, *size, device="meta")
    try:
        expected = tuple(module.to("meta")(x).shape[2:])
        if min(expected) <= 0:
            # torch returns an empty map when padding crops a transposed conv away; we refuse it
            raise RuntimeError("empty output")
    except RuntimeError:
        with pytest.raises(CNNCoreError) as err:
            spatial_output_size(module, *size)
        assert err.value.field in ("height", "width")
        return
    assert spatial_output_size(module, *size) == expected


@settings(max_examples=40, deadline=None)
@given(height=st.integers(4, 40), width=st.integers(4, 40), channels=st.integers(1, 3))
def test_autoencoder_reconstructs_any_size(height, width, channels):
    model = build_model(
        "autoencoder", device="meta", in_channels=channels, input_size=(height, width)
    )
    assert model(torch.zeros(1, channels, height, width, device="meta")).shape == (
        1,
        channels,
        height,
        width,
    )


def test_feature_map_size_walks_blocks():
    model = get_model("tinyvgg")
    assert feature_map_size([model.block1, model.block2], 64, 64) == (13, 13)
    assert model.classifier.in_features == 10 * 13 * 13
