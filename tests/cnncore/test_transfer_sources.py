"""Transfer from weights files (`cnncore.transfer_sources`): the bundled trained models and
installed ImageNet weights become a run's starting network whose backbone computes exactly what
the source computes (checked against plain torch ops and against torchvision), with a new head
on top and, when asked, every backbone layer frozen."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataSplit
from cnncore.datasets.colour_things import COLOUR_THINGS, generate_colour_things
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier
from cnncore.models.tinyvgg import TinyVGG
from cnncore.pretrained import IMAGENET_RECIPE, PUBLISHED, InstalledWeights, write_weights
from cnncore.training import TrainConfig, Trainer
from cnncore.transfer import plan_transfer_from, transfer_data, transfer_model
from cnncore.transfer_sources import load_weights_source, weights_source
from cnncore.weights import WEIGHTS_DIR, TrainedMetadata, bundled_backbones, save_weights
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
    """`tinyvgg_colour` is a bundled backbone named by its file: TinyVGG 32 channels wide with
    batch norm (rebuilt strictly from the file with the options its metadata records), 3×32×32
    input, the 16 colour things; on fresh pictures of that set (another seed than its training
    split's) it scores near its recorded held-out accuracy."""
    source = weights_source("bundled", "tinyvgg_colour", imagenet_dir=None)
    meta = source.trained
    assert source.model == "tinyvgg_colour" and source.config.model == "tinyvgg"
    assert meta.options == {"batch_norm": True, "width": 32}
    assert (source.config.batch_norm, source.config.width) == (True, 32)
    assert meta.model == "tinyvgg" and meta.dataset == "colour_things"
    assert meta.input_shape == (3, 32, 32) and meta.labels == COLOUR_THINGS
    assert bundled_backbones() == {"tinyvgg_colour": WEIGHTS_DIR / "tinyvgg_colour.safetensors"}
    net = load_weights_source(source).model  # load_state_dict(strict=True) inside
    assert isinstance(net, TinyVGG) and net.classifier.in_features == 32 * 5 * 5
    assert isinstance(net.block1.conv1[1], nn.BatchNorm2d)
    images, labels, _ = generate_colour_things(25, side=32, seed=123)
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        accuracy = (net((images - mean) / std).argmax(1) == labels).float().mean().item()
    assert accuracy > meta.score - 0.08 and accuracy > 4 / 16, (accuracy, meta.score)


def _backbone_with_options(directory, options):
    """A small TinyVGG 6 channels wide with batch norm (its running statistics moved off their
    start), written as a bundled backbone whose metadata records the run options it needs."""
    torch.manual_seed(5)
    net = build_classifier("tinyvgg", (3, 16, 16), 4, batch_norm=True, width=6)
    with torch.no_grad():
        net.train()(torch.rand(8, 3, 16, 16) * 3)  # running mean and variance now differ from 0/1
    meta = TrainedMetadata(
        model="tinyvgg", config={"in_channels": 3, "num_classes": 4, "input_size": [16, 16]},
        input_shape=(3, 16, 16), dataset="colour_things", labels=("a", "b", "c", "d"),
        mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), metric="accuracy", score=0.5, epochs=1,
        seed=0, train_size=8, val_size=2, options=options,
    )  # fmt: skip
    save_weights(net, directory / "wide_bn.safetensors", meta)
    return directory / "wide_bn.safetensors"


def test_a_backbone_built_with_run_options_is_rebuilt_with_them(tmp_path):
    """A bundled backbone trained with batch norm and a width (TinyVGG's channels) is rebuilt
    with both: it loads strictly, a run from it starts from the file's weights (every tensor
    but the new head, batch norm statistics included), and that run's checkpoint loads back
    through the builder every run uses."""
    path = _backbone_with_options(tmp_path, {"batch_norm": True, "width": 6})
    source = weights_source("bundled", "wide_bn", imagenet_dir=None, bundled_dir=tmp_path)
    config = source.config
    assert (config.model, config.batch_norm, config.width) == ("tinyvgg", True, 6)
    net = load_weights_source(source).model  # load_state_dict(strict=True) inside
    saved = load_file(path)
    assert net.state_dict().keys() == saved.keys()
    assert "block1.conv1.1.running_mean" in saved and saved["block1.conv1.0.weight"].shape[0] == 6
    data = DataSplit("user", torch.rand(12, 3, 16, 16), torch.arange(12) % 3,
                     torch.rand(6, 3, 16, 16), torch.arange(6) % 3, ["x", "y", "z"])  # fmt: skip
    run = TrainConfig(model="tinyvgg", epochs=1, batch_size=4)
    plan = plan_transfer_from(config, source.trained, run, [], replace_head=True)
    assert (plan.config.batch_norm, plan.config.width) == (True, 6)
    model = transfer_model(load_weights_source(source), 3, freeze=[], replace_head=True, seed=1)
    facts = source.trained
    data = transfer_data(data, facts.input_shape, "scale", (facts.mean, facts.std))
    trainer = Trainer(plan.config, data=data, model=model)
    step0 = trainer.model.state_dict()
    for name, tensor in saved.items():
        if not name.startswith("classifier."):
            assert torch.equal(step0[name], tensor), name
    assert step0["classifier.weight"].shape == (3, 6 * 1 * 1)
    events = list(trainer.run())
    assert events[-1]["kind"] == "end"
    written = save_checkpoint(trainer, tmp_path / "run.safetensors")
    again = load_checkpoint(written)
    assert (again.config.batch_norm, again.config.width) == (True, 6)
    trained = trainer.model.state_dict()
    assert again.model.state_dict().keys() == trained.keys()
    for name, tensor in again.model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    assert not torch.equal(trained["block1.conv1.0.weight"], saved["block1.conv1.0.weight"])


def test_options_a_run_cannot_rebuild_are_refused(tmp_path):
    _backbone_with_options(tmp_path, {"batch_norm": True, "width": 6, "groups": 2})
    with pytest.raises(CNNCoreError) as refused:
        weights_source("bundled", "wide_bn", imagenet_dir=None, bundled_dir=tmp_path)
    assert refused.value.field == "init_from.model" and "groups" in str(refused.value)
    for model, width in (("lenet5", 8), ("tinyvgg", 0), ("tinyvgg", 65), ("tinyvgg", 2.5)):
        with pytest.raises(CNNCoreError) as refused:
            TrainConfig(model=model, width=width).check()
        assert refused.value.field == "width", (model, width)
    TrainConfig(model="tinyvgg", width=64).check()
