"""The desk objects benchmark set: repeatable by its seed, every class in turn, pictures that
differ, and refusals for impossible sizes."""

import numpy as np
import pytest

from cnncore.datasets.desk_objects import DESK_CLASSES, generate_desk_objects
from cnncore.errors import CNNCoreError


def test_repeatable_by_seed_and_different_otherwise():
    first = generate_desk_objects(4, side=32, seed=5)
    again = generate_desk_objects(4, side=32, seed=5)
    other = generate_desk_objects(4, side=32, seed=6)
    assert [k for k, _ in first] == list(DESK_CLASSES) * 4
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other, strict=True))
    pictures = np.stack([p for _, p in first])
    assert pictures.shape == (12, 32, 32, 3) and pictures.dtype == np.uint8
    assert len({p.tobytes() for p in pictures}) == 12


@pytest.mark.parametrize(("per_class", "side"), [(0, 32), (1, 8), (1, 1024)])
def test_impossible_sizes_are_refused(per_class, side):
    with pytest.raises(CNNCoreError):
        generate_desk_objects(per_class, side=side)
