"""Previews made after the answer are the pictures made at once; nothing big is held for them."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import cnncore.images as images
from cnncore.features import handcrafted_feature_maps
from cnncore.images import PREVIEW_SIDE, preprocess, sample_image, shrink
from cnncore.presets import preset_kernels

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def stretched(values: np.ndarray) -> np.ndarray:
    """The normalise step's picture: its values stretched over 0..255, grey repeated as RGB."""
    low, high = values.min(), values.max()
    shown = np.rint((values - low) / (high - low) * 255).astype(np.uint8)
    return np.repeat(shown, 3, axis=2) if shown.shape[2] == 1 else shown


@pytest.mark.parametrize("channels", [3, 1])
def test_later_previews_equal_the_pictures_of_each_step(channels):
    picture = sample_image("china")  # 427 × 640
    mean, std = (MEAN, STD) if channels == 3 else ((0.5,), (0.25,))
    result = preprocess(
        picture, size=(224, 224), channels=channels, mean=mean, std=std, resize_ratio=256 / 224
    )
    original, *later = result.steps
    assert not original.pending and all(step.pending for step in later)
    sizes = [step.nbytes for step in result.steps]  # known before the previews are made

    resized = Image.fromarray(picture.rgb).resize((383, 256), Image.Resampling.BILINEAR)
    cropped = resized.crop((80, 16, 304, 240))
    expected = {"original": picture.rgb, "resize": np.asarray(resized), "crop": np.asarray(cropped)}
    if channels == 1:
        expected["grayscale"] = np.stack([np.asarray(cropped.convert("L"))] * 3, -1)
    expected["normalise"] = stretched(result.tensor[0].permute(1, 2, 0).numpy())
    assert [step.step for step in result.steps] == list(expected)
    for step in result.steps:
        np.testing.assert_array_equal(step.preview, shrink(expected[step.step], PREVIEW_SIDE))
        assert not step.pending and step.preview.dtype == np.uint8
    assert [step.nbytes for step in result.steps] == [s.preview.nbytes for s in result.steps]
    assert sizes == [step.nbytes for step in result.steps]


def test_a_preview_asked_for_by_two_threads_at_once_is_made_once():
    result = preprocess(sample_image("flower"), size=(224, 224), channels=3, mean=MEAN, std=STD)
    step = result.steps[-1]
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: step.preview, range(8)))
    assert all(picture is made[0] for picture in made)


def test_a_large_step_makes_its_preview_at_once(monkeypatch):
    monkeypatch.setattr(images, "LATER_PREVIEW_PIXELS", 224 * 224 - 1)
    result = preprocess(sample_image("china"), size=(224, 224), channels=3, mean=MEAN, std=STD)
    assert not any(step.pending for step in result.steps)


def test_settling_feature_maps_makes_their_previews():
    maps = handcrafted_feature_maps("handcrafted", sample_image("checkerboard"), preset_kernels())
    assert maps.deferred and not any(layer.deferred for layer in maps.layers)
    maps.settle()
    assert not maps.deferred
