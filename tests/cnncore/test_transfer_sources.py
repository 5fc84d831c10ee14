"""Transfer from weights files (`cnncore.transfer_sources`): the bundled trained models and
installed ImageNet weights become a run's starting network whose backbone computes exactly what
the source computes (checked against plain torch ops and against torchvision), with a new head
on top and, when asked, every backbone layer frozen."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from cnncore.datasets.colour_things import COLOUR_THINGS, generate_colour_things
from cnncore.errors import CNNCoreError
from cnncore.models.tinyvgg import TinyVGG
from cnncore.pretrained import IMAGENET_RECIPE, PUBLISHED, InstalledWeights, write_weights
from cnncore.training import TrainConfig
from cnncore.transfer import plan_transfer_from, transfer_model
from cnncore.transfer_sources import load_weights_source, weights_source
from cnncore.weights import WEIGHTS_DIR, bundled_backbones
from tests.cnncore.torchvision_reference import torchvision_models


def head_input(model: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return seen[0], logits


def test_bundled_tinyvgg_backbone_is_the_files_network_with_a_new_head():
    source = weights_source("bundled", "tinyvgg", imagenet_dir=None)
    assert source.trained.input_shape == (3, 64, 64) and len(source.trained.labels) == 6
    net = transfer_model(load_weights_source(source), 3, freeze=[], replace_head=True, seed=4)
    state = load_file(WEIGHTS_DIR / "tinyvgg.safetensors")
    x = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    expected = x
    for block in ("block1", "block2"):  # conv-ReLU-conv-ReLU-maxpool, from the file's tensors
        for conv in ("conv1", "conv2"):
            w, b = state[f"{block}.{conv}.weight"], state[f"{block}.{conv}.bias"]
            expected = F.relu(F.conv2d(expected, w, b))
        expected = F.max_pool2d(expected, 2)
    features, logits = head_input(net.eval(), net.classifier, x)
    torch.testing.assert_close(features, expected.flatten(1), rtol=1e-5, atol=1e-5)
    assert net.classifier.out_features == 3
    head = net.classifier
    expected_logits = F.linear(expected.flatten(1), head.weight, head.bias)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)


def test_freezing_the_backbone_leaves_only_the_head_learning():
    source = weights_source("bundled", "lenet5", imagenet_dir=None)
    plan = plan_transfer_from(source.config, source.trained, TrainConfig(model="lenet5"), [],
                              True, freeze_backbone=True)  # fmt: skip
    assert plan.head not in plan.freeze and plan.freeze
    net = transfer_model(load_weights_source(source), 4, freeze=plan.freeze, replace_head=True)
    learning = [name for name, p in net.named_parameters() if p.requires_grad]
    assert learning == [f"{plan.head}.weight", f"{plan.head}.bias"]


def test_sources_that_are_not_there_are_refused_naming_the_field(tmp_path):
    for kind, model in (("bundled", "resnet18"), ("bundled", "autoencoder"),
                        ("imagenet", "resnet18")):  # fmt: skip
        with pytest.raises(CNNCoreError) as refused:
            weights_source(kind, model, imagenet_dir=tmp_path)
        assert refused.value.field == "init_from.model"
    with pytest.raises(CNNCoreError) as refused:
        weights_source("scratch", "tinyvgg", imagenet_dir=tmp_path)
    assert refused.value.field == "init_from.weights"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_imagenet_backbone_computes_torchvisions_features(tmp_path, name):
    models = torchvision_models()
    if models is None:
        pytest.skip("no torchvision reference here (make torchvision-reference)")
    torch.manual_seed(3)
    reference = getattr(models, name)().eval()  # torchvision's layout, seeded weights
    published = PUBLISHED[name]
    meta = InstalledWeights(name, "imagenet", published.url, published.file_name, "0" * 64,
                            "imagenet-1k", IMAGENET_RECIPE, published.top1, published.top5, {},
                            "2026-12-06T00:00:00+00:00")  # fmt: skip
    write_weights(tmp_path, name, reference.state_dict(), meta)
    source = weights_source("imagenet", name, imagenet_dir=tmp_path)
    assert source.trained.input_shape == (3, 224, 224) and len(source.trained.labels) == 1000
    net = transfer_model(load_weights_source(source), 3, freeze=[], replace_head=True).eval()
    head = net.get_submodule("fc" if name == "resnet18" else "classifier.1")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    features, logits = head_input(net, head, x)
    if name == "resnet18":
        reference.fc = nn.Identity()
    else:
        reference.classifier = nn.Identity()
    with torch.no_grad():
        expected = reference(x)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, F.linear(expected, head.weight, head.bias),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_the_colour_backbone_is_tinyvgg_pretrained_on_colour_things():
    """`tinyvgg_colour` is a bundled backbone named by its file: TinyVGG's network (rebuilt
    strictly from the file), 3×32×32 input, the 16 colour things; on fresh pictures of that set
    (another seed than its training split's) it scores near its recorded held-out accuracy."""
    source = weights_source("bundled", "tinyvgg_colour", imagenet_dir=None)
    meta = source.trained
    assert source.model == "tinyvgg_colour" and source.config.model == "tinyvgg"
    assert meta.model == "tinyvgg" and meta.dataset == "colour_things"
    assert meta.input_shape == (3, 32, 32) and meta.labels == COLOUR_THINGS
    assert bundled_backbones() == {"tinyvgg_colour": WEIGHTS_DIR / "tinyvgg_colour.safetensors"}
    net = load_weights_source(source).model  # load_state_dict(strict=True) inside
    assert isinstance(net, TinyVGG) and net.classifier.in_features == 10 * 5 * 5
    images, labels, _ = generate_colour_things(25, side=32, seed=123)
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        accuracy = (net((images - mean) / std).argmax(1) == labels).float().mean().item()
    assert accuracy > meta.score - 0.08 and accuracy > 4 / 16, (accuracy, meta.score)
