"""Theoretical receptive fields against autograd (the gradient support of a unit) and against the
published table of Araujo, Norris & Sim (Distill 2019; google-research/receptive_field,
RECEPTIVE_FIELD_TABLE.md, computed on the TF-Slim models)."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn

from cnncore.errors import CNNCoreError
from cnncore.models import build_model, get_model_info, list_models
from cnncore.models.resnet import Bottleneck
from cnncore.receptive_field import (
    Box,
    FieldGraph,
    receptive_fields,
    trace_receptive_fields,
    unit_receptive_field,
)

# --- the oracle: which input pixels have a non-zero gradient of a unit -------------------------


def _open_paths(model: nn.Module) -> nn.Module:
    """Max pooling swapped for average pooling of the same geometry: a max routes its gradient
    to one pixel of each window, an average to all of them."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1)), "average pooling has no dilation"
                setattr(
                    module,
                    name,
                    nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode),
                )
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(module, name, nn.AdaptiveAvgPool2d(child.output_size))
    return model


def linearised(model: nn.Module) -> nn.Module:
    """The model itself with every path open: positive averaging weights, zero biases, batch norm
    as the identity. Inputs are small and positive, so ReLU, ReLU6, tanh and sigmoid all pass a
    non-zero gradient (ReLU6 would saturate if residual sums grew past 6)."""
    model = copy.deepcopy(model)
    if any(p.is_meta for p in model.parameters()):
        model = model.to_empty(device="cpu")
    _open_paths(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    return model


class _OneChannel(nn.Module):
    """Sum the channels, then the layer's own geometry on one channel."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        nn.init.constant_(layer.weight, 1.0 / layer.weight.numel())

    def forward(self, x):
        return self.layer(x.sum(1, keepdim=True))


class _ChannelSum(nn.Module):
    def forward(self, x):
        return x.sum(1, keepdim=True)


def narrowed(model: nn.Module) -> nn.Module:
    """Every conv rebuilt with one input and one output channel and the module's own kernel,
    stride, padding, dilation (and output padding), on the channel sum of its input; batch norm
    and linear layers as the identity and a channel sum. Which pixels reach a unit does not depend
    on channels, so torch computes the same supports for a fraction of the cost."""
    model = _open_paths(copy.deepcopy(model))
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ConvTranspose2d):
                setattr(
                    module,
                    name,
                    _OneChannel(
                        nn.ConvTranspose2d(
                            1,
                            1,
                            child.kernel_size,
                            child.stride,
                            child.padding,
                            child.output_padding,
                            bias=False,
                            dilation=child.dilation,
                        )
                    ),
                )
            elif isinstance(child, nn.Conv2d):
                setattr(
                    module,
                    name,
                    _OneChannel(
                        nn.Conv2d(
                            1,
                            1,
                            child.kernel_size,
                            child.stride,
                            child.padding,
                            child.dilation,
                            bias=False,
                        )
                    ),
                )
            elif isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.Linear):
                setattr(module, name, _ChannelSum())
    return model


class _LeafTracer(fx.Tracer):
    """Keeps the replacement modules as single nodes, so node names match the original graph."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (_OneChannel, _ChannelSum)) or super().is_leaf_module(m, qualname)


def gradient_supports(
    graph: FieldGraph, model: nn.Module, units: list[tuple[str, int, int]], narrow: bool = True
) -> list[torch.Tensor]:
    """For each (node, y, x): the H×W mask of input pixels the unit's gradient reaches.

    One batched backward: sample b of the batch selects unit b (samples never mix in eval mode).
    """
    # float64 where it is cheap (one channel); averaging weights keep float32 far from underflow
    oracle = narrowed(model).double() if narrow else linearised(model)
    oracle.eval()
    dtype = torch.float64 if narrow else torch.float32
    for p in oracle.parameters():
        p.requires_grad_(False)
    gm = fx.GraphModule(oracle, _LeafTracer().trace(oracle))
    nodes = {n.name: n for n in gm.graph.nodes}
    wanted = [s.node for s in graph.steps if s.rule != "input"]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    output.args = (tuple(nodes[name] for name in wanted),)
    gm.recompile()
    channels = 1 if narrow else graph.input_shape[0]
    x = (torch.rand(len(units), channels, *graph.input_size, dtype=dtype) + 1) * 1e-3
    x.requires_grad_(True)
    outputs = dict(zip(wanted, gm(x), strict=True))
    for step in graph.steps:  # the sizes the fields were computed for are the real ones
        if step.rule != "input":
            got = outputs[step.node].shape[2:] if outputs[step.node].dim() == 4 else None
            assert (tuple(got) if got is not None else None) == step.field.output_size, step.node
    total = sum(
        outputs[node][b, :, y, x_].sum() if outputs[node].dim() == 4 else outputs[node][b].sum()
        for b, (node, y, x_) in enumerate(units)
    )
    (grad,) = torch.autograd.grad(total, x)
    return [g.abs().sum(0) > 0 for g in grad]


def check_units(
    graph: FieldGraph,
    model: nn.Module,
    units: list[tuple[str, int, int]],
    holes_allowed: bool = False,
    narrow: bool = True,
) -> None:
    """Analytic box == gradient support, unit by unit."""
    by_node = {s.node: s.field.layer for s in graph.steps}
    supports = gradient_supports(graph, model, units, narrow)
    for (node, y, x), mask in zip(units, supports, strict=True):
        unit = graph.unit(by_node[node], y, x)
        if not mask.any():
            assert unit.clipped_box is None, (unit.field.layer, y, x)
            continue
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        support = Box(int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max()))
        assert unit.clipped_box == support, (unit.field.layer, y, x, unit)
        inside = unit.box.area - unit.padding_cells
        assert int(mask.sum()) == inside - unit.unreached_cells, (unit.field.layer, y, x)
        if not holes_allowed:
            assert int(mask.sum()) == support.area, (unit.field.layer, y, x)


def check_closed_form(graph: FieldGraph) -> None:
    """Where the field is uniform, the walked box is Distill's start + index·jump ± (r − 1)/2."""
    for step in graph.steps:
        field = step.field
        if step.rule == "input" or not field.uniform:
            continue
        height, width = field.output_size or (1, 1)
        for y, x in {(0, 0), (height - 1, width - 1), (height // 2, width // 3)}:
            unit = graph.unit(field.layer, y, x)
            assert (unit.box.y0, unit.box.y1) == field.height.span(y), (field.layer, y)
            assert (unit.box.x0, unit.box.x1) == field.width.span(x), (field.layer, x)


def units_of(
    graph: FieldGraph, per_layer: int = 3, skip_pass: bool = False
) -> list[tuple[str, int, int]]:
    units = []
    for step in graph.steps:
        if step.rule == "input" or skip_pass and step.rule == "pass":
            continue
        height, width = step.field.output_size or (1, 1)
        corners = [(0, 0), (height - 1, width - 1), (height // 3, width // 2), (0, width - 1)]
        picks = corners[:per_layer] if per_layer > 1 else [corners[len(units) % 3]]
        units += [(step.node, y, x) for y, x in picks]
    return units


# --- small modules: sequential, residual, inception-like, dilated, transposed -----------------


class Residual(nn.Module):
    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 3, 3, stride=stride, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.shortcut = nn.Conv2d(channels, 3, 1, stride=stride)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + self.shortcut(x))


class InceptionLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(2, 3, 1)
        self.branch2 = nn.Conv2d(2, 3, 5, padding=2)
        self.branch3 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class Misaligned(nn.Module):
    """Two paths to the same size whose fields are centred half a pixel apart."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)  # centre of unit 0 at 0.5
        self.conv = nn.Conv2d(2, 2, 3, stride=2, padding=1)  # centre of unit 0 at 0

    def forward(self, x):
        return self.pool(x) + self.conv(x)


SMALL_MODELS = {
    "sequential": lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 5, stride=2, padding=2),
        nn.BatchNorm2d(4),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True),
        nn.Conv2d(4, 2, 3, padding=1),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Linear(18, 5),
    ),
    "residual": lambda: nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), Residual(2), Residual(3)),
    "inception": lambda: nn.Sequential(InceptionLike(), nn.Conv2d(8, 2, 3, stride=2)),
    "dilated": lambda: nn.Sequential(
        *(nn.Conv2d(2, 2, 3, padding=d, dilation=d) for d in (1, 2, 4))
    ),
    "same_even_kernel": lambda: nn.Sequential(
        nn.Conv2d(2, 2, 2, padding="same"), nn.Conv2d(2, 2, 4, padding="same", dilation=2)
    ),
    "misaligned": Misaligned,
    "transposed": lambda: nn.Sequential(
        nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(2, 2, 4, stride=3, padding=2),
    ),
}


# torch warns that an even 'same' kernel pads a copy of the input: asymmetric padding is the point
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("size", [(17, 13), (16, 16)])
def test_small_models_match_gradient_support(name, size):
    model = SMALL_MODELS[name]()
    graph = trace_receptive_fields(model, (2, *size))
    check_units(graph, model, units_of(graph, per_layer=4))
    check_closed_form(graph)


def test_hand_computed_sequential():
    """conv3 → conv3/s2 → pool2/s2 → conv3(d=2, p=2), worked out with the recurrence by hand."""
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3),
        nn.Conv2d(1, 1, 3, stride=2),
        nn.MaxPool2d(2),
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),
    )
    fields = receptive_fields(model, (1, 32, 32))
    # r: 3, 3+2·1 = 5, 5+1·2 = 7, 7+4·4 = 23; j: 1, 2, 4, 4
    # start: 1, 1+1·1 = 2, 2+0.5·2 = 3, 3+(2−2)·4 = 3
    got = [(f.height.size, f.height.jump, f.height.start) for f in fields.values()]
    assert got == [(3, 1, 1), (5, 2, 2), (7, 4, 3), (23, 4, 3)]
    assert [f.output_size for f in fields.values()] == [(30, 30), (14, 14), (7, 7), (7, 7)]
    unit = unit_receptive_field(model, (1, 32, 32), "3", 0, 6)
    # centre of unit (0, 6): 3 + 0·4 = 3 and 3 + 6·4 = 27, half-width 11
    assert unit.box == Box(-8, 14, 16, 38)
    # column 31 is never read: conv 2's last unit (13) reaches conv 1's unit 28, i.e. pixel 30
    assert unit.clipped_box == Box(0, 14, 16, 30)
    assert unit.padding_cells == 23 * 23 - 15 * 16
    # dilation 2 reads pool units {0, 2} and {4, 6} (the other taps fall in padding) → conv 2
    # units {0, 1, 4, 5} → rows {0..6, 8..14}; columns {16..22, 24..30}: 14 × 14 pixels seen
    assert unit.unreached_cells == 15 * 16 - 14 * 14


def test_alignment_is_reported():
    fields = receptive_fields(Misaligned(), (2, 16, 16))
    assert fields["pool"].height.start == 0.5 and fields["conv"].height.start == 0
    merged = fields["add"]
    assert not merged.aligned and merged.uniform
    # the hull of [−1.5+... ]: pool sees 0..1, conv sees −1..1 → unit 0 sees −1..1 (3 pixels)
    assert (merged.height.size, merged.height.start) == (3, 0)
    assert all(f.aligned for f in receptive_fields(InceptionLike(), (2, 9, 9)).values())


def test_unreached_border_pixels():
    """A 2×2/2 pool on 7 rows drops row 6: the box holds it, the unit cannot see it."""
    model = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1))
    unit = unit_receptive_field(model, (1, 7, 7), "1", 2, 2)
    assert unit.box == Box(2, 7, 2, 7)
    assert unit.clipped_box == Box(2, 5, 2, 5)
    assert unit.padding_cells == 11 and unit.unreached_cells == 25 - 16


# --- random stacks, checked against autograd ---------------------------------------------------


@st.composite
def stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "max", "avg", "transposed"]))
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        if kind == "conv":
            d = draw(st.integers(1, 3))
            layers.append(nn.Conv2d(1, 1, k, s, draw(st.integers(0, 3)), d))
        elif kind == "transposed":
            layers.append(
                nn.ConvTranspose2d(
                    1, 1, k, s, draw(st.integers(0, k - 1)), draw(st.integers(0, s - 1))
                )
            )
        else:
            pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
            layers.append(pool(k, s, draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans())))
    return nn.Sequential(*layers), draw(st.integers(6, 20)), draw(st.integers(6, 20))


@settings(max_examples=50, deadline=None)
@given(stacks())
def test_random_stacks_match_gradient_support(case):
    model, height, width = case
    try:
        # torch answers an empty map where a transposed conv's padding crops its whole output:
        # a configuration cnncore refuses, as it refuses what torch raises on
        torch_ok = model(torch.zeros(1, 1, height, width)).numel() > 0
    except RuntimeError:
        torch_ok = False
    try:
        graph = trace_receptive_fields(model, (1, height, width))
    except CNNCoreError as exc:
        assert not torch_ok, f"torch runs this stack but the receptive field refuses: {exc}"
        assert exc.field in ("height", "width")
        return
    assert torch_ok
    check_units(graph, model, units_of(graph, per_layer=4), holes_allowed=True)
    check_closed_form(graph)


# --- every zoo model -----------------------------------------------------------------------------


def zoo_input(name: str) -> tuple[int, int, int]:
    """The smallest comfortable input: the default for small models, else 64×72 (non-square, so
    the axes cannot be swapped unnoticed; AlexNet needs at least 63)."""
    default = get_model_info(name).default_input
    if default.height <= 64:
        return default.as_tuple()
    return default.channels, 64, 72


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_matches_gradient_support(name):
    shape = zoo_input(name)
    model = build_model(name, device="meta", in_channels=shape[0], input_size=shape[1:])
    graph = trace_receptive_fields(model, shape)
    check_closed_form(graph)
    # three units of every layer that moves the field (batch norm and ReLU copy their input's)
    check_units(graph, model, units_of(graph, per_layer=3, skip_pass=True))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_zoo_model_at_full_width(name):
    """The one-channel oracle is faithful: the real model (all channels, grouped convs, batch
    norm) gives the same supports, here for a dozen units spread over the layers."""
    model = build_model(name, device="meta")
    graph = trace_receptive_fields(model, (3, 32, 40))
    units = units_of(graph, per_layer=1, skip_pass=True)
    check_units(graph, model, units[:: max(1, len(units) // 12)], narrow=False)


# --- Distill's table (TF-Slim models; values at 224 and 321 where padding depends on size) ------


def _rows(name: str, layers: list[str], size: int = 224, **config) -> list[tuple]:
    model = build_model(name, device="meta", **config)
    fields = receptive_fields(model, (3, size, size))
    return [
        (fields[n].height.size, fields[n].height.jump, fields[n].height.effective_padding)
        for n in layers
    ]


def test_vgg16_reproduces_distill_table():
    """conv1_1, pool1, conv2_1, pool2, conv3_1, conv3_2, pool3, conv4_1, conv4_2, pool4,
    conv5_1, conv5_2, pool5: same layers, same padding as vgg_16 → all three columns agree."""
    layers = [f"features.{i}" for i in (0, 4, 5, 9, 10, 12, 16, 17, 19, 23, 24, 26, 30)]
    assert _rows("vgg16", layers) == [
        (3, 1, 1),
        (6, 2, 2),
        (10, 2, 4),
        (16, 4, 6),
        (24, 4, 10),
        (32, 4, 14),
        (44, 8, 18),
        (60, 8, 26),
        (76, 8, 34),
        (100, 16, 42),
        (132, 16, 58),
        (164, 16, 74),
        (212, 32, 90),
    ]


def test_alexnet_reproduces_distill_sizes_and_strides():
    """conv1, pool1, conv2, conv3, conv4, conv5, pool5. alexnet_v2 pads conv1 'VALID'; torchvision's
    conv1 has padding 2, which moves every later field 2 pixels: effective padding = table + 2."""
    layers = [f"features.{i}" for i in (0, 2, 3, 6, 8, 10, 12)]
    table = [
        (11, 4, 0),
        (19, 8, 0),
        (51, 8, 16),
        (99, 16, 32),
        (131, 16, 48),
        (163, 16, 64),
        (195, 32, 64),
    ]
    assert _rows("alexnet", layers) == [(r, j, p + 2) for r, j, p in table]


def test_mobilenet_v1_reproduces_distill_table():
    """Conv2d_0 and Conv2d_1..13_pointwise. Sizes and strides agree at any input; TF's 'SAME'
    pads stride-2 layers asymmetrically (nothing before) on even inputs, so effective padding
    agrees with the table's 321 column, where TF pads 1 before as PyTorch always does."""
    layers = ["features.0.0"] + [f"features.{i}.pointwise.0" for i in range(1, 14)]
    sizes = [3, 7, 11, 19, 27, 43, 59, 91, 123, 155, 187, 219, 251, 315]
    strides = [2, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32]
    padding_321 = [1, 3, 5, 9, 13, 21, 29, 45, 61, 77, 93, 109, 125, 157]
    for size in (224, 321):
        assert _rows("mobilenet_v1", layers, size) == list(
            zip(sizes, strides, padding_321, strict=True)
        )


class SlimResNet50(nn.Module):
    """ResNet-50 from the zoo's bottlenecks with TF-Slim's striding: the stride sits on the *last*
    unit of blocks 1-3 (resnet_utils.py), not on the first unit of blocks 2-4 as in torchvision."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks, channels, in_channels = [], 64, 64
        for depth, stride in zip((3, 4, 6, 3), (2, 2, 2, 1), strict=True):
            units = []
            for i in range(depth):
                units.append(Bottleneck(in_channels, channels, stride if i == depth - 1 else 1))
                in_channels = channels * 4
            blocks.append(nn.Sequential(*units))
            channels *= 2
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(self.maxpool(self.conv1(x)))


def test_resnet50_reproduces_distill_table_with_slim_striding():
    ends = ["blocks.0.2.relu3", "blocks.1.3.relu3", "blocks.2.5.relu3", "blocks.3.2.relu3"]
    for size, padding in ((224, None), (321, [17, 49, 145, 241])):
        with torch.device("meta"):
            fields = receptive_fields(SlimResNet50(), (3, size, size))
        got = [(fields[n].height.size, fields[n].height.jump) for n in ends]
        assert got == [(35, 8), (99, 16), (291, 32), (483, 32)]
        if padding:  # at 224 TF's 'SAME' max pool pads nothing before: the table says 15, 47 ...
            assert [fields[n].height.effective_padding for n in ends] == padding


def test_resnet50_torchvision_layout():
    """The zoo strides the first unit of layers 2-4 (torchvision v1.5), so its fields differ from
    the table: stem 11/4; layer1 11+3·8 = 35/4; layer2 35+8 (strided 3×3 at j=4) + 3·16 = 91/8;
    layer3 91+16+5·32 = 267/16; layer4 267+32+2·64 = 427/32."""
    rows = _rows(
        "resnet50",
        ["maxpool", "layer1.2.relu3", "layer2.3.relu3", "layer3.5.relu3", "layer4.2.relu3"],
    )
    assert [(r, j) for r, j, _ in rows] == [(11, 4), (35, 4), (91, 8), (267, 16), (427, 32)]


def test_googlenet_stem_and_inception3_reproduce_inception_v2_table():
    """Conv2d_1a_7x7, MaxPool_2a_3x3, Conv2d_2b_1x1, Conv2d_2c_3x3, MaxPool_3a_3x3, Mixed_3b,
    Mixed_3c of inception_v2 have the fields of GoogLeNet's stem and inception 3a/3b with the
    paper's 5×5 branch (v2's two 3×3 convs see as far as one 5×5). Torchvision's 3×3 branch makes
    3a/3b see 43 and 59. Later modules differ (v2 strides inside Mixed_4a; v1 max-pools), and so
    does effective padding (v1 pools with ceil_mode and no padding, TF with 'SAME')."""
    stem = ["conv1.conv", "maxpool1", "conv2.conv", "conv3.conv", "maxpool2"]
    mixed = ["inception3a.cat", "inception3b.cat"]
    paper = _rows("googlenet", stem + mixed, branch3_kernel=5)
    assert [(r, j) for r, j, _ in paper] == [
        (7, 2),
        (11, 4),
        (11, 4),
        (19, 4),
        (27, 8),
        (59, 8),
        (91, 8),
    ]
    torchvision = _rows("googlenet", mixed)
    assert [(r, j) for r, j, _ in torchvision] == [(43, 8), (59, 8)]


# --- bad input ---------------------------------------------------------------------------------


def test_errors_name_their_field():
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))
    graph = trace_receptive_fields(model, (1, 8, 8))
    with pytest.raises(CNNCoreError) as exc:
        graph.unit("nope", 0, 0)
    assert exc.value.field == "layer"
    for y, x, field in ((4, 0, "y"), (-1, 0, "y"), (0, 4, "x")):
        with pytest.raises(CNNCoreError) as exc:
            graph.unit("1", y, x)
        assert exc.value.field == field
    with pytest.raises(CNNCoreError) as exc:
        trace_receptive_fields(model, (1, 4, 8))
    assert exc.value.field == "height"
    with pytest.raises(CNNCoreError) as exc:
        trace_receptive_fields(model, (1, 8, 0))
    assert exc.value.field == "width"
    for layer in (nn.Upsample(scale_factor=2), nn.GroupNorm(1, 1)):
        with pytest.raises(CNNCoreError) as exc:
            trace_receptive_fields(nn.Sequential(nn.Conv2d(1, 1, 3), layer), (1, 8, 8))
        assert exc.value.field == "model"


def test_default_unit_is_centre_of_deepest_spatial_map():
    """LeNet-5: C5 (5×5 on S4's 5×5 map) has one unit that sees everything, so it counts as
    global; the default is S4's centre unit."""
    model = build_model("lenet5", device="meta")
    fields = receptive_fields(model, (1, 32, 32))
    assert fields["features.6"].is_global and not fields["features.5"].is_global
    unit = unit_receptive_field(model, (1, 32, 32))
    assert unit.field.layer == "features.5" and (unit.y, unit.x) == (2, 2)
    # (r, j, start): C1 (5, 1, 2) → S2 (6, 2, 2.5) → C3 (14, 2, 6.5) → S4 (16, 4, 7.5);
    # unit 2 is centred on 7.5 + 2·4 = 15.5, ± 7.5
    assert (unit.field.height.size, unit.field.height.jump, unit.field.height.start) == (16, 4, 7.5)
    assert unit.box == Box(8, 23, 8, 23) == unit.clipped_box


class _SharedActivation(nn.Module):
    """One ReLU module called twice, as torchvision's BasicBlock does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3)
        self.conv2 = nn.Conv2d(1, 1, 3, stride=2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))))


def test_module_calls_keep_each_call_in_order():
    graph = trace_receptive_fields(_SharedActivation(), (1, 16, 16))
    calls = graph.module_calls()
    assert list(calls) == ["conv1", "relu", "conv2"]
    assert [f.layer for f in calls["relu"]] == ["relu", "relu_1"]
    assert [f.height.size for f in calls["relu"]] == [3, 5]
    assert [f.height.jump for f in calls["relu"]] == [1, 2]
    # functional layers are not module calls
    resnet = trace_receptive_fields(build_model("resnet18", device="meta"), (3, 64, 64))
    module_layers = {f.layer for fields in resnet.module_calls().values() for f in fields}
    assert set(resnet.fields) - module_layers == {
        name for name in resnet.fields if name.endswith(".add")
    }
