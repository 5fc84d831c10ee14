"""Live prediction's probabilities against torch: the picture prepared as the feature maps
prepare it, the model run, softmax over all classes in the model's order."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncore.errors import CNNCoreError
from cnncore.features import prepare_input
from cnncore.images import DecodedImage
from cnncore.live_prediction import class_probabilities
from cnncore.weights import load_model


@pytest.fixture(scope="module", params=["lenet5", "tinyvgg"])
def loaded(request):
    return load_model(request.param)


def picture(seed: int, height: int, width: int) -> DecodedImage:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return DecodedImage(rgb=rgb, format="PNG", mode="RGB", orientation=1)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), height=st.integers(8, 90), width=st.integers(8, 90))
def test_probabilities_are_torch_softmax_of_the_logits(loaded, seed, height, width):
    image = picture(seed, height, width)
    found = class_probabilities(loaded, image)
    with torch.no_grad():
        logits = loaded.model(prepare_input(loaded.weights, image).tensor)
    expected = torch.nn.functional.softmax(logits[0].double(), dim=0)
    assert found.labels == loaded.weights.labels
    assert found.input_shape == loaded.weights.input_shape
    assert np.allclose(found.probs, expected.numpy(), atol=1e-6)
    assert sum(found.probs) == pytest.approx(1.0, abs=1e-5)


def test_a_digit_drawn_white_on_black_reads_as_that_digit():
    """LeNet-5's bundled weights (MNIST): a vertical bar in the middle is a one."""
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[12:84, 44:52] = 255
    found = class_probabilities(load_model("lenet5"), DecodedImage(rgb, "PNG", "RGB", 1))
    assert found.labels[int(np.argmax(found.probs))] == "1"


def test_weights_without_class_names_are_refused():
    untrained = load_model("resnet18", use_bundled=False)
    assert not untrained.weights.labels
    with pytest.raises(CNNCoreError) as refused:
        class_probabilities(untrained, picture(0, 32, 32))
    assert refused.value.code == "live_no_classes" and refused.value.field == "model"
    assert refused.value.ctx == {"model": "resnet18"}
