"""Block structure against the real models: the branches it reports, run one after another on a
random input and joined as it says, reproduce the module's own forward pass."""

import pytest
import torch
from torch import nn

from cnncore.blocks import model_blocks
from cnncore.errors import CNNCoreError
from cnncore.inspect import summarize_blocks, summarize_model
from cnncore.models import build_model, list_models
from cnncore.models.googlenet import INCEPTION_SETTINGS


def merges(blocks):
    return [block for block in blocks if block.merge is not None]


def run_path(model: nn.Module, names, x: torch.Tensor) -> torch.Tensor:
    for name in names:
        x = model.get_submodule(name)(x)
    return x


def replay(model: nn.Module, block, x: torch.Tensor) -> torch.Tensor:
    """The block's output computed from its reported structure alone."""
    merge = block.merge
    x = run_path(model, merge.before, x)
    outputs = [run_path(model, branch.layers, x) for branch in merge.branches]
    joined = sum(outputs) if merge.kind == "add" else torch.cat(outputs, dim=1)
    return run_path(model, merge.after, joined)


def record(model: nn.Module, names, x: torch.Tensor, pick) -> dict:
    """`pick(args, output)` of each named module's first call during `model(x)`."""
    seen = {}

    def hook(name):
        def keep(module, args, output):
            seen.setdefault(name, pick(args, output))

        return keep

    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize(
    ("name", "size", "count"), [("resnet18", 64, 8), ("googlenet", 64, 9), ("mobilenet_v2", 64, 10)]
)
def test_reported_branches_reproduce_the_forward_pass(name, size, count):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10).eval()
    blocks = model_blocks(model, (3, size, size))
    joined = merges(blocks)
    assert len(joined) == count
    x = torch.randn(1, 3, size, size)
    inputs = record(model, [block.name for block in joined], x, lambda args, out: args[0])
    with torch.no_grad():
        for block in joined:
            module = model.get_submodule(block.name)
            expected = module(inputs[block.name])
            torch.testing.assert_close(replay(model, block, inputs[block.name]), expected)
            assert block.output_shape == tuple(expected.shape[1:]) == block.merge.output_shape


def test_resnet18_has_8_basic_blocks_3_with_projection_shortcuts():
    blocks = summarize_blocks("resnet18")
    joined = merges(blocks)
    assert [b.name for b in joined] == [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]
    assert {b.type for b in joined} == {"BasicBlock"}
    summary = summarize_model("resnet18")
    projections = []
    for block in joined:
        main, shortcut = block.merge.branches
        assert block.merge.kind == "add" and block.merge.before == ()
        assert [summary.layer(n).type for n in main.layers] == [
            "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"
        ]  # fmt: skip
        assert block.merge.after == (f"{block.name}.relu2",)
        assert main.output_shape == shortcut.output_shape == block.output_shape
        types = [summary.layer(n).type for n in shortcut.layers]
        if types == ["Identity"]:
            continue
        assert types == ["Conv2d", "BatchNorm2d"]
        projections.append(block.name)
    assert projections == ["layer2.0", "layer3.0", "layer4.0"]


def test_googlenet_9_inception_modules_of_4_branches_summing_to_the_concat():
    blocks = summarize_blocks("googlenet")
    joined = merges(blocks)
    assert [b.name for b in joined] == list(INCEPTION_SETTINGS)
    for block in joined:
        _, ch1x1, _, ch3x3, _, ch5x5, pool_proj = INCEPTION_SETTINGS[block.name]
        merge = block.merge
        assert merge.kind == "concat" and len(merge.branches) == 4
        channels = [branch.output_shape[0] for branch in merge.branches]
        assert channels == [ch1x1, ch3x3, ch5x5, pool_proj]
        assert sum(channels) == merge.output_shape[0] == block.output_shape[0]
        for index, branch in enumerate(merge.branches, start=1):
            assert all(n.startswith(f"{block.name}.branch{index}.") for n in branch.layers)
        assert merge.branches[3].layers[0] == f"{block.name}.branch4.0"  # the 3×3 max pool


def test_mobilenet_v2_inverted_residuals_have_an_identity_shortcut_exactly_when_used():
    model = build_model("mobilenet_v2", device="meta")
    residual = [
        name for name, m in model.named_modules() if getattr(m, "use_res_connect", False) is True
    ]
    joined = merges(summarize_blocks("mobilenet_v2"))
    assert [b.name for b in joined] == residual
    summary = summarize_model("mobilenet_v2")
    for block in joined:
        shortcut, main = block.merge.branches  # `x + self.conv(x)`
        assert shortcut.layers == ()
        convs = [summary.layer(n) for n in main.layers if summary.layer(n).type == "Conv2d"]
        assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (1, 1)]
        depthwise = model.get_submodule(convs[1].name)
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
        assert [c.groups for c in convs] == [1, depthwise.groups, 1]  # the summary says so too


@pytest.mark.parametrize("name", list_models())
def test_every_container_with_its_output_shape(name):
    model = build_model(name, device="meta")
    blocks = summarize_blocks(name)
    containers = [n for n, m in model.named_modules() if n and next(m.children(), None)]
    assert sorted(b.name for b in blocks) == sorted(containers)
    summary = summarize_model(name)
    x = torch.zeros(1, *summary.input_shape, device="meta")
    shapes = record(model.eval(), containers, x, lambda args, out: tuple(out.shape[1:]))
    assert {b.name: b.output_shape for b in blocks} == {n: shapes.get(n) for n in containers}
    ran = [row.name for row in summary.layers if row.output_shape is not None]
    for block in merges(blocks):
        merge = block.merge
        parts = [*merge.before, *(n for b in merge.branches for n in b.layers), *merge.after]
        assert sorted(parts) == sorted(n for n in ran if n.startswith(block.name + "."))


def test_input_size_reaches_the_shapes():
    block = {b.name: b for b in summarize_blocks("resnet18", height=96, width=128)}["layer4.1"]
    assert block.output_shape == (512, 3, 4)


class TwoJoins(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.body = Twice()

    def forward(self, x):
        return self.body(self.inner(x) + 1)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = x + self.a(x)
        return torch.cat([y, y + self.b(y)], 1)


def test_a_forward_joining_twice_gets_no_merge_and_constants_are_no_join():
    blocks = {b.name: b for b in model_blocks(TwoJoins(), (2, 5, 5))}
    assert blocks["inner"].merge is None  # `+ 1` adds no second path
    assert blocks["body"].merge is None
    assert blocks["body"].output_shape == (4, 5, 5)


def test_an_input_the_model_cannot_take_is_a_core_error():
    with pytest.raises(CNNCoreError) as error:
        model_blocks(build_model("lenet5", device="meta"), (1, 3, 3))
    assert error.value.field == "model"
