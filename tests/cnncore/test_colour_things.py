"""The colour backbone's pretraining set (`cnncore.datasets.colour_things`): repeatable by its
seed, every class in turn, pictures in range and all different, classes told apart by what is
drawn (not by the background), none of the teach benchmark's objects, refusals for impossible
sizes."""

import numpy as np
import pytest
import torch

from cnncore.data import DataConfig, load_images
from cnncore.datasets.colour_things import (
    COLOUR_THINGS,
    COLOUR_THINGS_KO,
    colour_thing,
    generate_colour_things,
)
from cnncore.datasets.desk_objects import DESK_CLASSES
from cnncore.errors import CNNCoreError


def test_repeatable_by_seed_and_different_otherwise():
    images, labels, names = generate_colour_things(2, side=32, seed=5)
    again, _, _ = generate_colour_things(2, side=32, seed=5)
    other, _, _ = generate_colour_things(2, side=32, seed=6)
    assert names == list(COLOUR_THINGS) and len(COLOUR_THINGS_KO) == len(COLOUR_THINGS) == 16
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32
    assert labels.tolist() == list(range(16)) * 2
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert torch.equal(images, again)
    assert not any(torch.equal(a, b) for a, b in zip(images, other, strict=True))
    assert len({bytes(p.numpy().tobytes()) for p in images}) == 32
    # quantised to 8-bit levels like a photograph's pixels
    torch.testing.assert_close(images * 255, (images * 255).round(), atol=1e-4, rtol=0)


def test_classes_differ_in_what_is_drawn():
    """The same background and lighting draws (one seed) with a different class: the pictures
    differ, and each class's mean picture differs from every other's."""
    means = []
    for kind in COLOUR_THINGS:
        pictures = [colour_thing(kind, np.random.default_rng(s), 32) for s in range(40)]
        means.append(np.mean(pictures, axis=0))
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            assert np.abs(means[i] - means[j]).mean() > 1.0, (COLOUR_THINGS[i], COLOUR_THINGS[j])


def test_not_the_teach_benchmark_objects():
    assert not set(COLOUR_THINGS) & set(DESK_CLASSES)


def test_loaded_by_name_for_the_training_script():
    images, labels, names = load_images(
        DataConfig(name="colour_things", image_size=24, shapes_count=32, seed=5)
    )
    direct, direct_labels, _ = generate_colour_things(2, side=24, seed=5)
    assert torch.equal(images, direct) and torch.equal(labels, direct_labels)
    assert names == list(COLOUR_THINGS)


@pytest.mark.parametrize(("per_class", "side"), [(0, 32), (1, 8), (1, 1024), (6000, 32)])
def test_impossible_sizes_are_refused(per_class, side):
    with pytest.raises(CNNCoreError):
        generate_colour_things(per_class, side=side)


def test_unknown_kind_is_refused():
    with pytest.raises(CNNCoreError) as refused:
        colour_thing("mug", np.random.default_rng(0))
    assert refused.value.field == "kind"
