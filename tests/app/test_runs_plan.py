"""Planning a run checks it against its dataset before any worker starts: what `plan_run`
accepts is exactly what the worker could train (checked against the real datasets, the real
split and real forward passes), and what it refuses names the field."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.runs.spec import DATASET_FACTS, _refusal, check_dataset_fit, plan_run
from app.schemas.runs import RunCreate
from app.settings import Settings
from cnncore.data import DataConfig, load_images, split_dataset
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier, fit_input_size
from cnncore.training import TrainConfig


def plan(**values) -> dict:
    return plan_run(RunCreate(**values), Settings(), lambda run_id: None)


def refusal(**values) -> CNNCoreError:
    with pytest.raises(CNNCoreError) as caught:
        plan(**values)
    return caught.value


@pytest.mark.parametrize("name", ["digits", "mnist5k", "shapes"])
def test_the_facts_are_those_of_the_loaded_datasets(name):
    images, labels, class_names = load_images(DataConfig(name=name, shapes_count=12))
    channels, side, names = DATASET_FACTS[name]
    assert tuple(images.shape[1:]) == (channels, side, side)
    assert tuple(class_names) == names
    assert int(labels.max()) == len(names) - 1


def trains(classes: list[int]) -> bool:
    """Whether the real split takes these classes (it merges repeats; planning refuses them)."""
    labels = torch.arange(100) % 10
    config = DataConfig(name="digits", classes=classes)
    try:
        split_dataset(torch.zeros(100, 1, 8, 8), labels, list("0123456789"), config)
    except CNNCoreError:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 13), min_size=2, max_size=6))
def test_chosen_classes_are_refused_exactly_when_they_cannot_be_trained(classes):
    config = TrainConfig(model="mlp", data=DataConfig(name="digits", classes=classes))
    twice = len(set(classes)) < len(classes)
    try:
        check_dataset_fit(config)
        accepted = True
    except CNNCoreError as exc:
        assert exc.field == "data.classes"
        accepted = False
    assert accepted == (trains(classes) and not twice)


def test_class_refusals_say_what_is_wrong():
    twice = refusal(data={"name": "digits", "classes": [3, 1, 3]})
    assert twice.field == "data.classes" and "class 3 is listed more than once" in str(twice)
    missing = refusal(data={"name": "shapes", "classes": [0, 6]})
    assert missing.field == "data.classes"
    assert "6 classes, numbered 0 to 5" in str(missing) and "5 ring" in str(missing)
    one = TrainConfig(model="mlp", data=DataConfig(name="digits", classes=[4]))
    with pytest.raises(CNNCoreError, match="at least 2 classes"):
        check_dataset_fit(one)


def forward_succeeds(model: str, channels: int, side: int) -> bool:
    """A real forward pass on CPU, as the worker's first step would run it."""
    net = build_classifier(model, (channels, side, side), 3).eval()
    try:
        with torch.no_grad():
            net(torch.rand(1, channels, side, side))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(("model", "image_size"), [
    ("alexnet", None), ("alexnet", 62), ("alexnet", 63), ("googlenet", 12), ("googlenet", 15),
    ("lenet5", None), ("tinyvgg", 4), ("resnet18", 4), ("mlp", 5),
])  # fmt: skip
def test_the_model_must_take_the_image_size(model, image_size):
    side = fit_input_size(model, 1, image_size or 8)  # what the trainer grows digits to
    expected = forward_succeeds(model, 1, side)
    try:
        plan(model=model, data={"name": "digits", "image_size": image_size})
        accepted = True
    except CNNCoreError as exc:
        assert exc.field == "data.image_size"
        accepted = False
    assert accepted == expected


def test_the_size_suggested_is_the_smallest_the_model_takes():
    message = str(refusal(model="alexnet", data={"name": "digits"}))
    smallest = int(message.split("at least ")[1].split(",")[0])
    assert forward_succeeds("alexnet", 1, smallest)
    assert not forward_succeeds("alexnet", 1, smallest - 1)
    assert _refusal("alexnet", 1, smallest) is None


def test_sizes_the_dataset_cannot_have_are_refused():
    small = refusal(model="mlp", data={"name": "shapes", "image_size": 8})
    assert small.field == "data.image_size" and "20 to 128" in str(small)
    shrink = refusal(model="mlp", data={"name": "mnist5k", "image_size": 16, "fit": "pad"})
    assert shrink.field == "data.image_size" and "padded down" in str(shrink)
    plan(model="mlp", data={"name": "mnist5k", "image_size": 32, "fit": "pad"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_the_server_lacks_is_refused():
    assert refusal(model="mlp", device="cuda").field == "device"
