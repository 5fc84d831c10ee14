"""Colormap LUTs: anchors hit exactly, shape and type, lightness rising for the designed maps."""

import numpy as np
import pytest

from cnncore.colormaps import COLORMAPS, apply_colormap, colormap, lut_hex
from cnncore.errors import CNNCoreError


@pytest.mark.parametrize("name", COLORMAPS)
def test_lut_is_256_rgb_uint8_and_read_only(name):
    lut = colormap(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    with pytest.raises(ValueError):
        lut[0, 0] = 1


def test_published_anchors_are_hit():
    viridis, magma = colormap("viridis"), colormap("magma")
    assert tuple(viridis[0]) == (0x44, 0x01, 0x54)
    assert tuple(viridis[255]) == (0xFD, 0xE7, 0x25)
    assert tuple(magma[0]) == (0x00, 0x00, 0x04) and tuple(magma[255]) == (0xFC, 0xFD, 0xBF)
    # matplotlib's 256-entry viridis at index 128 is (0.127568, 0.566949, 0.550556) · 255
    assert np.abs(viridis[128].astype(int) - (33, 145, 140)).max() <= 2
    np.testing.assert_array_equal(colormap("gray")[:, 0], np.arange(256))


@pytest.mark.parametrize("name", ["viridis", "magma", "gray"])
def test_lightness_increases_monotonically(name):
    # Rec. 709 luma as a stand-in for lightness: a sequential map must never get darker
    luma = colormap(name).astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luma) >= -0.5)


def test_apply_colormap_and_hex():
    levels = np.array([[0, 255], [128, 7]], dtype=np.uint8)
    rgb = apply_colormap(levels, "viridis")
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[1, 0], colormap("viridis")[128])
    assert lut_hex("gray")[255] == "#ffffff" and len(lut_hex("magma")) == 256
    with pytest.raises(CNNCoreError):
        apply_colormap(levels.astype(np.float32), "viridis")


def test_unknown_colormap_names_the_field():
    with pytest.raises(CNNCoreError, match="jet") as info:
        colormap("jet")
    assert info.value.field == "colormap"
