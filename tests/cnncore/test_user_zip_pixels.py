"""An uploaded archive's pixel budget: width × height summed over its images, from each header
before it is decoded, refused naming the file that crosses it."""

import io
import zipfile

import pytest
from PIL import Image

from cnncore.datasets.user_zip import ZipLimits, load_image_folder_zip
from cnncore.errors import CNNCoreError


def archive(sizes: dict[str, tuple[int, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, size in sizes.items():
            picture = io.BytesIO()
            Image.new("L", size, 100).save(picture, "PNG")
            zipped.writestr(name, picture.getvalue())
    return buffer.getvalue()


# read in path order: cats/a (100×100), cats/b (100×100), dogs/c (200×50)
SIZES = {"cats/a.png": (100, 100), "cats/b.png": (100, 100), "dogs/c.png": (200, 50)}


def test_an_archive_within_its_pixel_budget_loads_whole():
    images, labels, names = load_image_folder_zip(
        archive(SIZES), image_size=8, limits=ZipLimits(max_total_pixels=30_000)
    )  # exactly 3 × 10,000 pixels: the limit is inclusive
    assert images.shape == (3, 1, 8, 8) and labels.tolist() == [0, 0, 1]
    assert names == ["cats", "dogs"]


def test_the_file_that_crosses_the_budget_is_named():
    with pytest.raises(CNNCoreError) as info:
        load_image_folder_zip(archive(SIZES), limits=ZipLimits(max_total_pixels=29_999))
    error = info.value
    assert (error.field, error.code) == ("archive", "archive_too_many_pixels")
    assert "'dogs/c.png' (200×50)" in str(error)
    # 20,000 of the 29,999 went to cats/a and cats/b: 9,999 were left for dogs/c's 10,000
    assert error.ctx == {"width": 200, "height": 50, "pixels": 10_000, "limit": 9_999}


def test_many_small_images_each_within_the_per_image_limit_still_add_up():
    many = {f"{label}/{i:03}.png": (64, 64) for label in ("a", "b") for i in range(50)}
    limits = ZipLimits(max_image_pixels=64 * 64, max_total_pixels=64 * 64 * 99)
    with pytest.raises(CNNCoreError, match="'b/049.png'") as info:
        load_image_folder_zip(archive(many), limits=limits)
    assert info.value.ctx["limit"] == 0
    assert ZipLimits().max_total_pixels == 500_000_000
