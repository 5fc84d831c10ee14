"""Class names in each page language: every generated and published set with named classes has a
Korean name for each class, index for index; digits and a user's own names have none."""

import re

import pytest
import torch

from cnncore.class_names import localised_names
from cnncore.data import DataSplit
from cnncore.datasets.desk_objects import DESK_CLASSES, DESK_CLASSES_KO
from cnncore.datasets.shapes import SHAPE_CLASSES, SHAPE_CLASSES_KO
from cnncore.datasets.standard import STANDARD_DATASETS

HANGUL = re.compile(r"[\uac00-\ud7a3]")
SETS = {
    "shapes": (SHAPE_CLASSES, SHAPE_CLASSES_KO),
    "desk": (DESK_CLASSES, DESK_CLASSES_KO),
    "fashion_mnist": tuple(map(tuple, (STANDARD_DATASETS["fashion_mnist"].class_names,
                                       STANDARD_DATASETS["fashion_mnist"].class_names_ko))),
    "cifar10": tuple(map(tuple, (STANDARD_DATASETS["cifar10"].class_names,
                                 STANDARD_DATASETS["cifar10"].class_names_ko))),
}  # fmt: skip


@pytest.mark.parametrize("name", SETS)
def test_each_named_set_reads_in_korean_index_for_index(name):
    english, korean = SETS[name]
    assert len(set(korean)) == len(korean) == len(english)
    assert all(HANGUL.search(word) for word in korean)
    table = localised_names(english)
    assert table == {"en": english, "ko": korean}
    # a classifier of a subset, in its own order, keeps that order
    subset = english[::-2]
    assert localised_names(subset)["ko"] == korean[::-2]


def test_digits_and_own_names_have_none():
    assert localised_names(tuple(STANDARD_DATASETS["mnist"].class_names)) is None
    assert localised_names(("cat", "my own class")) is None
    assert localised_names(()) is None


def test_a_runs_dataset_summary_carries_the_names_of_each_language():
    english, korean = SETS["cifar10"]
    images = torch.zeros(4, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 9])
    split = DataSplit("cifar10", images, labels, images, labels, list(english))
    described = split.describe()
    assert described["names"] == {"en": list(english), "ko": list(korean)}
    assert described["class_names"] == list(english)
    digits = DataSplit("mnist", images, labels, images, labels, [str(d) for d in range(10)])
    assert "names" not in digits.describe()
