"""A student's pictures: kept small and upright as PNG, found again by their pixels whatever
their encoding, and read back for training exactly as PIL resizes them."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnncore.datasets.user_images import (
    PictureLimits,
    load_manifest_images,
    picture_digest,
    prepare_picture,
)
from cnncore.errors import CNNCoreError


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_picture_is_shrunk_to_the_side_by_area_averaging():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (60, 120, 3), dtype=np.uint8)
    kept = prepare_picture(encoded(Image.fromarray(pixels), "PNG"), "a.png", PictureLimits(side=30))
    assert (kept.width, kept.height) == (30, 15)
    stored = np.asarray(Image.open(io.BytesIO(kept.png)))
    # BOX filter over exact 4×4 blocks is their mean (Pillow rounds to the nearest level)
    blocks = pixels.reshape(15, 4, 30, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(stored.astype(np.float64) - blocks).max() <= 1.0
    assert kept.digest == picture_digest(stored)


def test_the_same_pixels_in_other_files_have_one_digest_and_others_another():
    grey = Image.new("L", (20, 10), 77)
    as_png = prepare_picture(encoded(grey, "PNG"), "a", PictureLimits())
    as_rgb_bmp = prepare_picture(encoded(grey.convert("RGB"), "BMP"), "b", PictureLimits())
    assert as_png.digest == as_rgb_bmp.digest
    other = prepare_picture(encoded(Image.new("L", (20, 10), 78), "PNG"), "c", PictureLimits())
    transposed = prepare_picture(encoded(Image.new("L", (10, 20), 77), "PNG"), "d", PictureLimits())
    assert len({as_png.digest, other.digest, transposed.digest}) == 3


def test_a_refusal_names_the_file():
    with pytest.raises(CNNCoreError) as refused:
        prepare_picture(b"nope", "cat 7.png", PictureLimits())
    assert refused.value.field == "files" and refused.value.code == "image_not_readable"
    assert refused.value.ctx["file"] == "cat 7.png" and "'cat 7.png'" in str(refused.value)


def test_a_manifest_loads_as_pil_resizes_each_picture(tmp_path):
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((20, 30), (9, 9))]
    entries = []
    for label, pixels in enumerate(pictures):
        digest = picture_digest(pixels)
        Image.fromarray(pixels).save(tmp_path / f"{digest}.png")
        entries.append([digest, 1 - label])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"classes": ["cup", "pen"], "images": entries}))
    images, labels, names = load_manifest_images(manifest, 12, 3)
    assert images.shape == (2, 3, 12, 12) and labels.tolist() == [1, 0] and names == ["cup", "pen"]
    for got, pixels in zip(images, pictures, strict=True):
        want = Image.fromarray(pixels).resize((12, 12), Image.Resampling.BILINEAR)
        expected = torch.from_numpy(np.asarray(want, np.float32) / 255.0).permute(2, 0, 1)
        assert torch.equal(got, expected)
    grey, _, _ = load_manifest_images(manifest, 8, 1)
    assert grey.shape == (2, 1, 8, 8)
    manifest.write_text(json.dumps({"classes": ["a"], "images": [["../../etc/passwd", 0]]}))
    with pytest.raises(CNNCoreError):
        load_manifest_images(manifest, 8, 1)
