"""Published ImageNet layouts: every torchvision file layout loads strictly into our zoo model and
gives torchvision's logits (fixtures written from torchvision 0.28.0, and torchvision itself when
its wheel is here: tests/cnncore/torchvision_reference.py)."""

from __future__ import annotations

import json
from functools import cache

import pytest
import torch

from cnncore.errors import CNNCoreError
from cnncore.models import get_model
from cnncore.pretrained import (
    PUBLISHED,
    PUBLISHED_CONFIG,
    WeightsLayoutError,
    WeightsUnavailableError,
    build_with,
    check_layout,
    installed,
    load_pretrained,
    remove_weights,
    torchvision_layout,
    weights_overview,
)
from cnncore.pretrained_files import import_weights
from tests.cnncore.torchvision_reference import (
    FIXTURES,
    MODELS,
    generated_state,
    layout_of,
    reference_input,
    reference_model,
    torchvision_models,
)

ENUMS = {"alexnet": "AlexNet_Weights", "vgg16": "VGG16_Weights", "resnet18": "ResNet18_Weights",
         "resnet50": "ResNet50_Weights", "googlenet": "GoogLeNet_Weights",
         "mobilenet_v2": "MobileNet_V2_Weights"}  # fmt: skip


@cache
def fixtures() -> dict:
    return json.loads(FIXTURES.read_text())


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def published_state(name: str) -> dict[str, torch.Tensor]:
    layout = {k: (shape, dtype) for k, (shape, dtype) in fixtures()[name]["layout"].items()}
    return generated_state(layout)


@pytest.mark.parametrize("name", MODELS)
def test_each_published_layout_loads_strictly_and_gives_torchvisions_logits(name):
    state = published_state(name)
    model = build_with(name, torchvision_layout(name, state), PUBLISHED_CONFIG.get(name, {}))
    with torch.no_grad():
        logits = model(reference_input())[0]
    reference = torch.tensor(fixtures()[name]["logits"])
    assert logits.shape == (1000,)
    assert relative_difference(logits, reference) <= 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_the_fixture_layouts_are_torchvisions_own(name):
    """With torchvision's wheel here, the stored layout and logits are checked against it live."""
    models = torchvision_models()
    if models is None:
        pytest.skip("torchvision 0.28.0 wheel not here (make torchvision-reference)")
    reference = reference_model(models, name).eval()
    assert layout_of(reference) == {k: tuple(v) for k, v in fixtures()[name]["layout"].items()}
    state = published_state(name)
    reference.load_state_dict(state, strict=True)
    ours = build_with(name, torchvision_layout(name, state), PUBLISHED_CONFIG.get(name, {}))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert relative_difference(ours(x), reference(x)) <= 1e-5


def test_the_published_files_are_torchvisions_v1_entries():
    """URLs, digest prefixes in the names and accuracies as torchvision 0.28 publishes them."""
    assert PUBLISHED["resnet50"].url == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert PUBLISHED["alexnet"].sha256_prefix == "7be5be79"  # alexnet-owt-7be5be79.pth
    assert PUBLISHED["googlenet"].sha256_prefix == "1378be20"
    assert (PUBLISHED["vgg16"].top1, PUBLISHED["vgg16"].top5) == (71.592, 90.382)
    models = torchvision_models()
    if models is None:
        return
    for name, weights in PUBLISHED.items():
        entry = getattr(models, ENUMS[name]).IMAGENET1K_V1
        assert entry.url == weights.url
        assert entry.meta["_metrics"]["ImageNet-1K"] == {"acc@1": weights.top1,
                                                         "acc@5": weights.top5}  # fmt: skip
        assert entry.meta["num_params"] == weights.params
        transforms = entry.transforms()
        assert (transforms.resize_size, transforms.crop_size) == ([256], [224])


def test_googlenet_drops_the_auxiliary_classifiers_and_transforms_its_input_as_torchvision():
    state = published_state("googlenet")
    assert any(k.startswith("aux1.") for k in state) and any(k.startswith("aux2.") for k in state)
    adapted = torchvision_layout("googlenet", state)
    assert not any(k.startswith(("aux1.", "aux2.")) for k in adapted)
    model = build_with("googlenet", adapted, {"transform_input": True})
    x = reference_input()
    means, stds = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = torch.cat(
        [x[:, c : c + 1] * (stds[c] / 0.5) + (means[c] - 0.5) / 0.5 for c in range(3)], 1
    )
    assert torch.equal(model.transform_input(x), expected)


def test_mobilenet_v2_accepts_its_earlier_cnnviz_names():
    """Before, the projection was a nested conv + BN: `conv.P.0.weight`, `conv.P.1.*`."""
    state = published_state("mobilenet_v2")
    old = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and 1 <= int(parts[1]) <= 17:
            projection = 1 if parts[1] == "1" else 2
            if parts[3] == str(projection) and parts[4] == "weight":
                key = ".".join([*parts[:4], "0", "weight"])
            elif parts[3] == str(projection + 1):
                key = ".".join([*parts[:3], str(projection), "1", *parts[4:]])
        old[key] = value
    assert "features.1.conv.1.0.weight" in old and "features.2.conv.2.1.running_var" in old
    adapted = torchvision_layout("mobilenet_v2", old)
    assert adapted.keys() == state.keys()
    assert all(adapted[k] is state[k] for k in state)


def test_a_wrong_layout_is_refused_listing_missing_unexpected_and_mismatched_keys():
    model = get_model("resnet18")
    state = dict(model.state_dict())
    del state["fc.bias"]
    state["fc.extra"] = torch.zeros(1)
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(WeightsLayoutError) as refused:
        check_layout("resnet18", state, model)
    text = str(refused.value)
    assert "missing (1): fc.bias" in text
    assert "unexpected (1): fc.extra" in text
    assert "wrong shape (1): conv1.weight: file (64, 3, 3, 3), model (64, 3, 7, 7)" in text
    assert refused.value.ctx == {"model": "resnet18", "missing": 1, "unexpected": 1,
                                 "mismatched": 1}  # fmt: skip


def test_installed_weights_are_loaded_memory_mapped_with_their_provenance(tmp_path):
    state = published_state("resnet18")
    source = tmp_path / "resnet18-mine.pth"
    torch.save(state, source)
    directory = tmp_path / "weights"
    import_weights(directory, "resnet18", source)
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no temporaries
    loaded = load_pretrained("resnet18", "imagenet", directory=directory)
    meta = loaded.weights.pretrained
    assert loaded.weights.source == "imported"  # not the published digest: no accuracy claimed
    assert (meta.top1, meta.url, meta.original_file) == (None, None, "resnet18-mine.pth")
    assert loaded.weights.resize_ratio == 256 / 224 and loaded.weights.input_shape == (3, 224, 224)
    reference = get_model("resnet18").eval()
    reference.load_state_dict(state)
    x = reference_input()
    with torch.no_grad():
        assert relative_difference(loaded.model(x), reference(x)) <= 1e-6
    assert load_pretrained("resnet18", "auto", directory=directory).weights.source == "imported"
    assert load_pretrained("resnet18", "initialisation",
                           directory=directory).weights.source == "initialisation"  # fmt: skip
    assert set(installed(directory)) == {"resnet18"}
    overview = {row.model: row for row in weights_overview(directory)}
    assert overview["resnet18"].chosen == "imported"
    assert overview["resnet18"].command == "cnnviz weights get resnet18"
    assert overview["lenet5"].chosen == "bundled" and overview["lenet5"].command is None
    assert overview["vgg16"].chosen == "initialisation"
    assert remove_weights(directory, "resnet18") and not remove_weights(directory, "resnet18")


def test_weights_asked_for_by_name_that_are_missing_are_refused_with_the_command(tmp_path):
    with pytest.raises(WeightsUnavailableError) as refused:
        load_pretrained("vgg16", "imagenet", directory=tmp_path)
    assert refused.value.field == "weights"
    assert refused.value.ctx["command"] == "cnnviz weights get vgg16"
    with pytest.raises(WeightsUnavailableError):
        load_pretrained("vgg16", "bundled", directory=tmp_path)
    with pytest.raises(CNNCoreError):
        load_pretrained("vgg16", "best", directory=tmp_path)
    assert load_pretrained("lenet5", "auto", directory=tmp_path).weights.source == "trained"
