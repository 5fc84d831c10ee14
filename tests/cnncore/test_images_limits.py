"""Pictures that cost more than their bytes: extreme aspect ratios, resizing, 16-bit decoding.

A 1×6000 grey PNG is 86 bytes; resizing its shorter side to 256 px made a 256×1,536,000
picture (gigabytes). Each refusal here comes before the allocation it prevents, and decoding
holds the output (3 bytes a pixel) plus one band of rows, whatever the file's sample width.
"""

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import cnncore.images as images
from cnncore.errors import CNNCoreError
from cnncore.images import (
    MAX_RESIZED_PIXELS,
    DecodedImage,
    _rgb_array,
    _to_rgb,
    decode_image,
    preprocess,
    resized_size,
)

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}
RNG = np.random.default_rng(17)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def grey_png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_the_red_team_strip_is_86_bytes_and_refused_by_its_header():
    data = grey_png(1, 6000)
    assert len(data) < 100
    with pytest.raises(CNNCoreError) as info:
        decode_image(data, **LIMITS, max_aspect_ratio=20)
    error = info.value
    assert (error.field, error.code) == ("image", "image_aspect_ratio")
    assert error.ctx == {"width": 1, "height": 6000, "limit": 20}


@pytest.mark.parametrize(("width", "height"), [(20, 1), (1, 20), (40, 2), (100, 100)])
def test_a_ratio_at_the_limit_is_decoded(width, height):
    decoded = decode_image(grey_png(width, height), **LIMITS, max_aspect_ratio=20)
    assert decoded.rgb.shape == (height, width, 3) and (decoded.rgb == 128).all()


@pytest.mark.parametrize(("width", "height"), [(21, 1), (1, 21), (41, 2), (1_000_000, 1)])
def test_a_ratio_over_the_limit_is_refused(width, height):
    with pytest.raises(CNNCoreError) as info:
        decode_image(grey_png(width, height), **LIMITS, max_aspect_ratio=20)
    assert info.value.code == "image_aspect_ratio"
    assert info.value.ctx == {"width": width, "height": height, "limit": 20}


def test_resized_size_is_what_preprocess_makes():
    # shorter side round(32·256/224) = 37; the longer int(37·300/200) = int(55.5) = 55, truncated
    # as torchvision's Resize does; never smaller than the crop
    assert resized_size((300, 200), (32, 32), 256 / 224) == (55, 37)
    assert resized_size((10, 10), (32, 32)) == (32, 32)
    flat = DecodedImage(np.zeros((300, 200, 3), np.uint8), "PNG", "RGB", 1)
    result = preprocess(flat, size=(32, 32), channels=3, mean=MEAN, std=STD, resize_ratio=256 / 224)
    assert result.steps[1].size == (55, 37)


@pytest.mark.parametrize(
    ("width", "expected"),
    # 1 px high: the height becomes 256 and the width 256 times its own (ImageNet 256/224)
    [(6000, (256, 1_536_000)), (10**6, (256, 256 * 10**6)), (4 * 10**7, (256, 1024 * 10**7))],
)
def test_strips_the_red_team_sent_resize_to_exact_integers(width, expected):
    # 1×4·10⁷ overflowed inside Pillow (OverflowError, a 500); here it is a plain number
    assert resized_size((1, width), (224, 224), 256 / 224) == expected


@pytest.mark.parametrize("width", [6000, 10**6])
def test_preprocess_refuses_a_resize_over_the_limit_before_making_it(width):
    strip = DecodedImage(np.full((1, width, 3), 128, np.uint8), "PNG", "L", 1)
    tracemalloc.start()
    try:
        with pytest.raises(CNNCoreError) as info:
            preprocess(strip, size=(224, 224), channels=3, mean=MEAN, std=STD,
                       resize_ratio=256 / 224)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pixels = 256 * 256 * width
    assert (info.value.field, info.value.code) == ("image", "image_resized_too_large")
    assert info.value.ctx == {
        "width": 256 * width, "height": 256, "pixels": pixels, "limit": MAX_RESIZED_PIXELS
    }  # fmt: skip
    assert peak < 1_000_000  # the 1 MB the refusal may cost vs 3 bytes × 393 M pixels


def test_the_resize_limit_is_inclusive():
    # 100×10 for a 224 crop (ratio 1): 2240×224 = 501,760 pixels
    strip = DecodedImage(np.full((10, 100, 3), 7, np.uint8), "PNG", "RGB", 1)
    options = {"size": (224, 224), "channels": 3, "mean": MEAN, "std": STD}
    result = preprocess(strip, **options, max_resized_pixels=501_760)
    assert result.steps[1].size == (224, 2240) and result.tensor.shape == (1, 3, 224, 224)
    with pytest.raises(CNNCoreError, match="501,760 pixels"):
        preprocess(strip, **options, max_resized_pixels=501_759)


def wide_pictures() -> dict[str, Image.Image]:
    """One picture per colour mode `_to_rgb` treats apart, 13×37 (several bands of 7 px)."""
    levels = RNG.integers(0, 65536, (37, 13), dtype=np.uint16)
    palette = Image.fromarray(RNG.integers(0, 4, (37, 13), dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    palette.info["transparency"] = 2
    return {
        "I;16": Image.fromarray(levels),
        "I;16B": Image.frombytes("I;16B", (13, 37), levels.astype(">u2").tobytes()),
        "I (stretched)": Image.fromarray(levels.astype(np.int32) - 70_000),
        "F (unit)": Image.fromarray(RNG.random((37, 13), dtype=np.float32)),
        "F (stretched)": Image.fromarray(RNG.normal(0, 9, (37, 13)).astype(np.float32)),
        "P + transparency": palette,
        "RGBA": Image.fromarray(RNG.integers(0, 256, (37, 13, 4), dtype=np.uint8)),
        "CMYK": Image.fromarray(RNG.integers(0, 256, (37, 13, 3), dtype=np.uint8)).convert("CMYK"),
    }


@pytest.mark.parametrize("name", list(wide_pictures()))
def test_converting_band_by_band_gives_the_whole_picture_conversion(name, monkeypatch):
    picture = wide_pictures()[name]
    whole = np.asarray(_to_rgb(picture))
    monkeypatch.setattr(images, "BAND_PIXELS", 7 * 13)  # 6 bands of 7 rows and one of 2
    np.testing.assert_array_equal(_rgb_array(picture), whole)


def test_sixteen_bit_decoding_holds_the_output_and_one_band_not_a_float_copy():
    height, width = 3000, 2000
    levels = np.tile(np.arange(width, dtype=np.uint16) * 32, (height, 1))
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, "PNG")
    tracemalloc.start()
    try:
        decoded = decode_image(buffer.getvalue(), **LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(decoded.rgb[0, :, 0], np.rint(levels[0] / 257).astype(np.uint8))
    assert (decoded.rgb == decoded.rgb[:1]).all()
    # the RGB output is 3 bytes a pixel (18 MB); one band of 2^18 pixels converts through
    # float64 (a few MB). The whole picture as float64 alone was 48 MB.
    assert peak < 3 * height * width + 12_000_000, peak
