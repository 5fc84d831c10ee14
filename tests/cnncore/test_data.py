"""Datasets: generated shapes, bundled digits/MNIST, verified files, uploaded zips, splits,
augmentation — values checked, not just shapes."""

import gzip
import hashlib
import io
import math
import stat
import tarfile
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnncore.data import DataConfig, load_dataset, resize_images, resize_split, split_dataset
from cnncore.datasets import shapes, standard
from cnncore.datasets.augment import AugmentConfig, affine_images, augment_batch, draw_changes
from cnncore.datasets.user_zip import ZipLimits, load_image_folder_zip
from cnncore.errors import CNNCoreError

# --- generated shapes --------------------------------------------------------------------------


def test_shapes_are_balanced_reproducible_and_in_range():
    images, labels, names = shapes.generate_shapes(120, image_size=24, seed=3)
    again, labels_again, _ = shapes.generate_shapes(120, image_size=24, seed=3)
    other, _, _ = shapes.generate_shapes(120, image_size=24, seed=4)
    assert images.shape == (120, 1, 24, 24)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    assert not torch.equal(images, other)
    assert torch.bincount(labels).tolist() == [20] * len(names)
    assert images.min() >= 0 and images.max() <= 1
    # every image shows something, and nothing touches the border (the outline fits inside)
    assert (images.flatten(1).max(1).values > 0.5).all()
    assert images[:, :, 0, :].max() < 0.05 and images[:, :, :, -1].max() < 0.05


@pytest.mark.parametrize(
    "kind, area",
    [("triangle", 3 * math.sqrt(3) / 4), ("square", 2.0), ("cross", 2.0), ("circle", math.pi)],
)
def test_a_rotated_shape_keeps_its_area(kind, area):
    # Area in units of r² (r = circumradius): equilateral triangle 3√3/4, square 2, the plus
    # sign 5 of its 9 grid cells of a square of side 2r/√(10/9), i.e. 2. Rotation must not
    # change it (Pillow's filled boundary pixels add about 1 %).
    r = 12.0
    sums = [shapes._draw(kind, 40, 20.0, 20.0, r, a, 255).sum() / 255 for a in (0, 0.4, 1.3, 2.9)]
    assert max(sums) / min(sums) < 1.02
    for measured in sums:
        assert measured == pytest.approx(area * r * r, rel=0.025)


def test_unknown_shape_is_refused():
    with pytest.raises(CNNCoreError, match="unknown shape"):
        shapes.generate_shapes(10, classes=("circle", "hexagon"))


# --- bundled datasets, splitting ---------------------------------------------------------------


def test_digits_split_is_stratified_disjoint_and_seeded():
    split = load_dataset(DataConfig(name="digits", val_fraction=0.25, seed=7))
    assert split.input_shape == (1, 8, 8) and split.num_classes == 10
    assert len(split.train_labels) + len(split.val_labels) == 1797
    # sklearn's digits: values 0..16 scaled to [0, 1]
    assert split.train_images.max() == 1.0 and split.train_images.min() == 0.0
    counts = torch.bincount(split.val_labels, minlength=10)
    full = torch.bincount(torch.cat([split.train_labels, split.val_labels]), minlength=10)
    assert torch.all((counts - full.float() * 0.25).abs() <= 0.5 + 1e-9)
    # images of the two splits are different images (no leakage), same seed same split
    train_rows = {tuple(x.flatten().tolist()) for x in split.train_images}
    assert sum(tuple(x.flatten().tolist()) in train_rows for x in split.val_images) < 5
    again = load_dataset({"name": "digits", "val_fraction": 0.25, "seed": 7})
    assert torch.equal(again.val_images, split.val_images)
    other = load_dataset(DataConfig(name="digits", val_fraction=0.25, seed=8))
    assert not torch.equal(other.val_labels, split.val_labels)
    # statistics are those of the training split alone
    assert split.mean[0] == pytest.approx(split.train_images.mean().item(), abs=1e-6)
    assert split.std[0] == pytest.approx(split.train_images.std().item(), abs=1e-6)


def test_class_subset_limit_and_few_shot():
    config = DataConfig(name="digits", classes=[5, 6, 7, 8, 9], train_per_class=4, seed=1)
    split = load_dataset(config)
    assert split.class_names == ["5", "6", "7", "8", "9"]
    assert torch.bincount(split.train_labels).tolist() == [4] * 5
    assert set(split.val_labels.tolist()) == {0, 1, 2, 3, 4}
    limited = load_dataset(DataConfig(name="digits", limit=200, val_fraction=0.5))
    assert len(limited.train_labels) + len(limited.val_labels) == 200
    with pytest.raises(CNNCoreError) as err:
        load_dataset(DataConfig(name="digits", classes=[3]))
    assert err.value.field == "classes"


def test_config_round_trips_and_rejects_unknown_keys():
    config = DataConfig(name="shapes", image_size=32, classes=[0, 1])
    assert DataConfig.from_dict(asdict(config)) == config
    with pytest.raises(CNNCoreError, match="unknown data setting"):
        DataConfig.from_dict({"name": "digits", "colour": "red"})
    with pytest.raises(CNNCoreError) as err:
        load_dataset(DataConfig(name="imagenet"))
    assert err.value.field == "name"


def test_mnist5k_padded_to_lenet_input():
    native = load_dataset(DataConfig(name="mnist5k", limit=300, seed=2))
    padded = load_dataset(DataConfig(name="mnist5k", limit=300, seed=2, image_size=32, fit="pad"))
    assert native.input_shape == (1, 28, 28) and padded.input_shape == (1, 32, 32)
    assert torch.equal(padded.train_images[:, :, 2:30, 2:30], native.train_images)
    assert padded.train_images[:, :, :2].abs().max() == 0
    assert native.train_images.max() == 1.0


def test_resize_split_resizes_both_parts_and_measures_the_statistics_again():
    split = load_dataset(DataConfig(name="digits", limit=60, seed=1))
    resized = resize_split(split, 12)
    assert torch.equal(resized.train_images, resize_images(split.train_images, 12))
    assert torch.equal(resized.val_images, resize_images(split.val_images, 12))
    assert torch.equal(resized.train_labels, split.train_labels)
    assert torch.equal(resized.val_labels, split.val_labels)
    assert resized.class_names == split.class_names and resized.name == split.name
    torch.testing.assert_close(torch.tensor(resized.mean), resized.train_images.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(resized.std), resized.train_images.std(dim=(0, 2, 3)))
    assert resized.mean != split.mean  # measured on the resized pixels, not carried over


def test_resize_matches_torch_and_pad_refuses_shrinking():
    images = torch.rand(3, 2, 8, 8)
    expected = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.allclose(resize_images(images, 20), expected.clamp(0, 1))
    with pytest.raises(CNNCoreError):
        resize_images(images, 6, fit="pad")


def test_channels_conversion_uses_luma():
    images = torch.rand(20, 1, 8, 8)
    labels = torch.arange(20) % 2
    split = split_dataset(images.expand(-1, 3, -1, -1), labels, ["a", "b"], DataConfig())
    assert split.input_shape == (3, 8, 8)
    rgb = load_dataset(DataConfig(name="digits", channels=3, limit=50))
    gray = load_dataset(DataConfig(name="digits", channels=1, limit=50))
    assert torch.allclose(rgb.train_images[:, 0], gray.train_images[:, 0])


# --- published files, verified -----------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28))
    labels = rng.integers(0, 10, size=30)
    sums = {}
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            raw = gzip.compress(_idx(array))
            (tmp_path / name).write_bytes(raw)
            sums[name] = hashlib.sha256(raw).hexdigest()
    spec = standard.StandardDataset("mnist", tmp_path.as_uri() + "/", sums, list("0123456789"))
    monkeypatch.setitem(standard.STANDARD_DATASETS, "mnist", spec)
    return tmp_path, images, labels


def test_idx_files_load_when_checksums_match(fake_mnist):
    root, images, labels = fake_mnist
    split = load_dataset(DataConfig(name="mnist", root=str(root), val_fraction=0.5))
    all_images = torch.cat([split.train_images, split.val_images])
    assert len(all_images) == 30
    x, y, _ = standard.load_standard_dataset("mnist", root, "test")
    assert np.array_equal((x[:, 0] * 255).round().numpy().astype(int), images)
    assert y.tolist() == labels.tolist()


def test_a_damaged_file_is_refused(fake_mnist):
    root, _, _ = fake_mnist
    path = root / "train-labels-idx1-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[:10] + bytes([raw[10] ^ 1]) + raw[11:])
    with pytest.raises(CNNCoreError, match="SHA-256") as err:
        standard.load_standard_dataset("mnist", root)
    assert err.value.field == "root"
    (root / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(CNNCoreError, match="missing"):
        standard.load_standard_dataset("mnist", root, "test")


def test_idx_header_is_checked():
    assert standard.parse_idx(_idx(np.arange(6).reshape(2, 3))).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(CNNCoreError):
        standard.parse_idx(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(CNNCoreError):
        standard.parse_idx(_idx(np.arange(6)) + b"extra")


def test_download_verifies_and_writes_checksums(fake_mnist, tmp_path):
    # A file:// base URL exercises the whole download path without any network.
    dest = tmp_path / "downloaded"
    written = standard.download_dataset("mnist", dest)
    assert [p.name for p in written] == list(standard._IDX_FILES)
    sums = (dest / "SHA256SUMS").read_text().splitlines()
    assert sums[0] == f"{standard.sha256_of(written[0])}  {written[0].name}"
    root, _, _ = fake_mnist
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    (dest / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(CNNCoreError, match="SHA-256"):
        standard.download_dataset("mnist", dest)
    assert not (dest / "t10k-labels-idx1-ubyte.gz").exists()


def _cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    raw = b"".join(bytes([lab]) + px.tobytes() for lab, px in zip(labels, pixels, strict=True))
    return raw, pixels, labels


def test_cifar_binary_from_folder_and_from_archive(tmp_path, monkeypatch):
    folder = tmp_path / "unpacked" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    members, batches = {}, {}
    for i, name in enumerate(standard._CIFAR_MEMBERS):
        raw, pixels, labels = _cifar_batch(4, i)
        (folder / name).write_bytes(raw)
        members[name] = hashlib.sha256(raw).hexdigest()
        batches[name] = (pixels, labels)
    monkeypatch.setattr(standard, "_CIFAR_MEMBERS", members)
    x, y, names = standard.load_standard_dataset("cifar10", tmp_path / "unpacked", "train")
    assert x.shape == (20, 3, 32, 32) and names[0] == "airplane"
    assert np.array_equal((x[4:8] * 255).round().numpy(), batches["data_batch_2.bin"][0])
    assert y[:4].tolist() == batches["data_batch_1.bin"][1].tolist()
    # the same records read straight from the verified tar.gz
    archive = tmp_path / "packed" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-bin")
    spec = standard.StandardDataset(
        "cifar10", "", {archive.name: standard.sha256_of(archive)}, names
    )
    monkeypatch.setitem(standard.STANDARD_DATASETS, "cifar10", spec)
    x2, y2, _ = standard.load_standard_dataset("cifar10", archive.parent, "test")
    assert np.array_equal((x2 * 255).round().numpy(), batches["test_batch.bin"][0])
    assert y2.tolist() == batches["test_batch.bin"][1].tolist()


# --- uploaded zip of class folders -------------------------------------------------------------


def _png(value: int, size: tuple[int, int] = (10, 12), mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_zip_of_class_folders_loads_resized_with_sorted_classes():
    data = _zip({
        "pets/dogs/a.png": _png(200),
        "pets/cats/b.png": _png(50),
        "pets/cats/c.jpg": _png(100, mode="RGB"),
        "pets/readme.txt": b"ignored",
        "__MACOSX/pets/cats/._b.png": b"resource fork",
    })  # fmt: skip
    images, labels, names = load_image_folder_zip(data, image_size=16)
    assert names == ["cats", "dogs"] and images.shape == (3, 1, 16, 16)
    assert labels.tolist() == [0, 0, 1]  # sorted by path: cats/b, cats/c, dogs/a
    assert images[0].unique().tolist() == [pytest.approx(50 / 255)]
    assert images[2].unique().tolist() == [pytest.approx(200 / 255)]
    rgb, _, _ = load_image_folder_zip(data, image_size=8, channels=3)
    assert rgb.shape == (3, 3, 8, 8)


@pytest.mark.parametrize(
    "bad_name, message",
    [("../evil/x.png", r"'\.\.'"), ("cats/../../evil.png", r"'\.\.'"),
     ("/etc/cats/x.png", "absolute"), ("C:/cats/x.png", "absolute"),
     ("cats\\..\\x.png", "absolute")],
)  # fmt: skip
def test_zip_path_escapes_are_refused(bad_name, message):
    data = _zip({"cats/a.png": _png(1), "dogs/b.png": _png(2), bad_name: _png(3)})
    with pytest.raises(CNNCoreError, match=message) as err:
        load_image_folder_zip(data)
    assert err.value.field == "archive"


def test_zip_symlinks_are_refused():
    data = _zip({"cats/a.png": _png(1), "dogs/b.png": _png(2)}, links=("dogs/link.png",))
    with pytest.raises(CNNCoreError, match="symbolic link"):
        load_image_folder_zip(data)


def test_zip_bombs_and_oversize_inputs_are_refused():
    bomb = _zip({"cats/a.png": _png(1), "dogs/b.png": b"\0" * 5_000_000})
    assert len(bomb) < 20_000  # a few kB that inflate to megabytes
    with pytest.raises(CNNCoreError, match="inflates"):
        load_image_folder_zip(bomb, limits=ZipLimits(max_total_bytes=1_000_000))
    small = _zip({"cats/a.png": _png(1), "dogs/b.png": _png(2, size=(300, 300))})
    with pytest.raises(CNNCoreError, match="pixels"):
        load_image_folder_zip(small, limits=ZipLimits(max_image_pixels=200 * 200))
    with pytest.raises(CNNCoreError, match="more than 1 files"):
        load_image_folder_zip(small, limits=ZipLimits(max_files=1))
    with pytest.raises(CNNCoreError, match="over"):
        load_image_folder_zip(small, limits=ZipLimits(max_archive_bytes=100))
    with pytest.raises(CNNCoreError, match="not a zip"):
        load_image_folder_zip(b"PK not really")
    with pytest.raises(CNNCoreError, match="not a readable image"):
        load_image_folder_zip(_zip({"cats/a.png": _png(1), "dogs/b.png": b"garbage"}))
    with pytest.raises(CNNCoreError, match="class folder"):
        load_image_folder_zip(_zip({"cats/a.png": _png(1), "loose.png": _png(2)}))
    with pytest.raises(CNNCoreError, match="need 2"):
        load_image_folder_zip(_zip({"cats/a.png": _png(1)}))


@pytest.mark.parametrize(("data", "limits", "code", "ctx"), [
    (b"PK not really", ZipLimits(), "archive_not_zip", {}),
    ("small", ZipLimits(max_archive_bytes=100), "archive_too_large", {"limit": 100}),
    ("small", ZipLimits(max_files=1), "archive_too_many_files", {"limit": 1}),
    ("bomb", ZipLimits(max_total_bytes=1_000_000), "archive_inflates_too_much",
     {"limit": 1_000_000}),
    ({"../x/a.png": _png(1)}, ZipLimits(), "archive_unsafe_path", {"file": "../x/a.png"}),
    ({"cats/a.txt": b"text"}, ZipLimits(), "archive_no_images", {}),
    ({"cats/a.png": _png(1), "loose.png": _png(2)}, ZipLimits(), "archive_not_in_class_folder",
     {"file": "loose.png"}),
    ({"cats/a.png": _png(1)}, ZipLimits(), "archive_class_count",
     {"count": 1, "needed": 2, "limit": 100}),
])  # fmt: skip
def test_zip_refusals_carry_a_code_and_ctx_the_pages_translate(data, limits, code, ctx):
    """Each refusal has its stable code (error.type.<code> in both catalogues) and the numbers or
    the file it is about: without one the Korean page showed English ('the upload is not a zip
    archive')."""
    if data == "small":
        data = _zip({"cats/a.png": _png(1), "dogs/b.png": _png(2, size=(300, 300))})
    elif data == "bomb":
        data = _zip({"cats/a.png": _png(1), "dogs/b.png": b"\0" * 5_000_000})
    elif isinstance(data, dict):
        data = _zip(data)
    with pytest.raises(CNNCoreError) as refused:
        load_image_folder_zip(data, limits=limits)
    assert (refused.value.code, refused.value.ctx, refused.value.field) == (code, ctx, "archive")


# --- augmentation ------------------------------------------------------------------------------


def test_affine_rotation_and_shift_match_exact_pixel_moves():
    images = torch.rand(2, 3, 6, 6)
    quarter = affine_images(images, torch.tensor([90.0, 90.0]), torch.zeros(2, 2))
    assert torch.allclose(quarter, torch.rot90(images, 1, (-2, -1)), atol=1e-5)
    half = affine_images(images[:, :, :4], torch.tensor([180.0, 180.0]), torch.zeros(2, 2))
    assert torch.allclose(half, images[:, :, :4].flip(-1).flip(-2), atol=1e-5)
    moved = affine_images(images, torch.zeros(2), torch.tensor([[2, 0], [0, -1]]))
    expected = torch.zeros_like(images)
    expected[0, :, :, 2:] = images[0, :, :, :-2]
    expected[1, :, :-1, :] = images[1, :, 1:, :]
    assert torch.allclose(moved, expected, atol=1e-6)


def test_augment_batch_is_seeded_bounded_and_off_by_default():
    images = torch.rand(16, 1, 10, 10)
    assert not AugmentConfig().enabled
    assert torch.equal(augment_batch(images, AugmentConfig(), torch.Generator()), images)
    config = AugmentConfig(shift=2, rotation=15, flip=True, brightness=0.2)
    a = augment_batch(images, config, torch.Generator().manual_seed(5))
    b = augment_batch(images, config, torch.Generator().manual_seed(5))
    c = augment_batch(images, config, torch.Generator().manual_seed(6))
    assert a.shape == images.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # flip alone mirrors about half the images and leaves the rest untouched
    flipped = augment_batch(images, AugmentConfig(flip=True), torch.Generator().manual_seed(1))
    mirrored = [torch.equal(f, x.flip(-1)) for f, x in zip(flipped, images, strict=True)]
    kept = [torch.equal(f, x) for f, x in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 2 < sum(mirrored) < 14
    # brightness alone adds one constant per image (before clamping)
    mid = torch.full((8, 1, 4, 4), 0.5)
    bright = augment_batch(mid, AugmentConfig(brightness=0.3), torch.Generator().manual_seed(2))
    per_image = bright.flatten(1)
    assert torch.all(per_image.max(1).values == per_image.min(1).values)
    assert torch.all((per_image[:, 0] - 0.5).abs() <= 0.3 + 1e-6)
    with pytest.raises(CNNCoreError):
        AugmentConfig(rotation=400)


@pytest.mark.parametrize(("rotation", "shift"), [(15.0, 3), (180.0, 0), (0.0, 16), (2.5, 1)])
def test_augmentation_draws_span_exactly_the_ranges_the_config_asks(rotation, shift):
    """Rotations uniform in [-rotation, rotation], shifts every integer in [-shift, shift]
    (never beyond), drawn from the generator; and a batch is changed by exactly those draws."""
    config = AugmentConfig(shift=shift, rotation=rotation, brightness=0.2)
    draws = draw_changes(20_000, config, torch.Generator().manual_seed(7))
    degrees, moves = draws.degrees, draws.shift
    assert degrees.abs().max() <= rotation and moves.abs().max() <= shift
    if rotation:  # the whole range is reached: within 0.2 % of each end
        assert degrees.min() < -0.998 * rotation and degrees.max() > 0.998 * rotation
        assert abs(float(degrees.mean())) < 0.02 * rotation  # centred (uniform)
    else:
        assert torch.equal(degrees, torch.zeros_like(degrees))
    assert set(moves.flatten().tolist()) == set(range(-shift, shift + 1))
    assert draws.brightness.abs().max() <= 0.2 and draws.mirror is None
    images = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    changed = augment_batch(images, config, torch.Generator().manual_seed(3))
    same = draw_changes(6, config, torch.Generator().manual_seed(3))
    moved = affine_images(images, same.degrees, same.shift)
    expected = (moved + same.brightness.view(6, 1, 1, 1)).clamp(0.0, 1.0)
    torch.testing.assert_close(changed, expected, rtol=0, atol=0)


def test_a_shift_moves_a_pixel_by_the_drawn_amount():
    image = torch.zeros(32, 1, 15, 15)
    image[:, 0, 7, 7] = 1.0  # one bright pixel at the centre
    config = AugmentConfig(shift=4)
    moved = augment_batch(image, config, torch.Generator().manual_seed(11))
    draws = draw_changes(32, config, torch.Generator().manual_seed(11))
    for picture, (dx, dy) in zip(moved, draws.shift.tolist(), strict=True):
        assert picture[0, 7 + dy, 7 + dx] == pytest.approx(1.0, abs=1e-5)
        assert float(picture.sum()) == pytest.approx(1.0, abs=1e-5)
