"""Desk objects: what a class photographs with a webcam, generated so a benchmark can repeat it.

Three things held up to a camera — a `mug` (a coloured cylinder with a handle), a `book` (a
tilted rectangle with a lighter page edge) and a `ball` (a shaded disc) — each drawn at a
random position, size, tilt, hue and brightness, over a random cluttered background (a
vertical light gradient and a few soft blobs, like a room behind the student), with a little
sensor noise. Unlike `cnncore.datasets.shapes` the classes differ in more than an outline
(colour varies within each class, backgrounds differ between every picture), which is what
makes a few dozen webcam frames per class a fair test of transfer learning.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cnncore.errors import CNNCoreError

__all__ = ["DESK_CLASSES", "DESK_CLASSES_KO", "desk_object", "generate_desk_objects"]

DESK_CLASSES = ("mug", "book", "ball")
DESK_CLASSES_KO = ("머그잔", "책", "공")  # index for index (what a Korean page shows)


def _background(rng: np.random.Generator, side: int) -> Image.Image:
    top, bottom = rng.uniform(60, 230, 3), rng.uniform(30, 200, 3)
    ramp = np.linspace(0.0, 1.0, side)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((side, side, 3))
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x, y = rng.uniform(0, side, 2)
        r = rng.uniform(0.05, 0.25) * side
        colour = tuple(int(c) for c in rng.uniform(40, 220, 3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(side / 24))


def _colour(rng: np.random.Generator, base: tuple[int, int, int]) -> tuple[int, int, int]:
    scale = rng.uniform(0.7, 1.2)
    return tuple(int(np.clip(c * scale + rng.normal(0, 25), 0, 255)) for c in base)  # type: ignore[return-value]


def _object(kind: str, rng: np.random.Generator, side: int) -> Image.Image:
    """The object alone on a transparent canvas, upright and centred."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    c, r = side / 2, side * rng.uniform(0.22, 0.34)
    if kind == "mug":
        body = _colour(rng, tuple(int(v) for v in rng.choice([(200, 40, 40), (40, 90, 200),
                                                             (240, 240, 235)])))  # fmt: skip
        w, h = r * 0.8, r * 1.1
        draw.ellipse((c + w * 0.6, c - h * 0.5, c + w * 1.5, c + h * 0.4), outline=body,
                     width=max(2, int(side / 24)))  # fmt: skip
        draw.rectangle((c - w, c - h, c + w, c + h), fill=body)
        draw.ellipse(
            (c - w, c - h - w * 0.3, c + w, c - h + w * 0.3), fill=_colour(rng, (60, 40, 30))
        )
    elif kind == "book":
        cover = _colour(rng, tuple(int(v) for v in rng.choice([(30, 120, 60), (120, 40, 140),
                                                              (200, 150, 30)])))  # fmt: skip
        w, h = r * 0.8, r * 1.15
        draw.rectangle((c - w, c - h, c + w, c + h), fill=cover)
        draw.rectangle((c + w * 0.75, c - h, c + w, c + h), fill=_colour(rng, (235, 230, 210)))
    elif kind == "ball":
        base = _colour(rng, tuple(int(v) for v in rng.choice([(230, 120, 20), (230, 210, 40),
                                                             (60, 160, 220)])))  # fmt: skip
        for step in range(8, 0, -1):  # shaded: lighter towards the top left
            k = step / 8
            shade = tuple(int(min(255, v * (1.25 - 0.45 * k))) for v in base)
            rr = r * k
            off = (1 - k) * r * 0.35
            draw.ellipse((c - rr - off, c - rr - off, c + rr - off, c + rr - off), fill=shade)
    else:
        raise CNNCoreError(f"unknown desk object {kind!r}; choose from {DESK_CLASSES}", "kind")
    return canvas


def desk_object(kind: str, rng: np.random.Generator, side: int = 96) -> np.ndarray:
    """One picture (side×side×3 uint8) of `kind` over a random background."""
    picture = _background(rng, side)
    thing = _object(kind, rng, side).rotate(float(rng.uniform(-25, 25)), Image.Resampling.BILINEAR)
    dx, dy = (int(v) for v in rng.uniform(-0.18, 0.18, 2) * side)
    picture.paste(thing, (dx, dy), thing)
    pixels = np.asarray(picture, dtype=np.float64) * rng.uniform(0.75, 1.15)  # lighting
    pixels += rng.normal(0, 4, pixels.shape)  # sensor noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate_desk_objects(
    per_class: int, side: int = 96, seed: int = 0, classes: tuple[str, ...] = DESK_CLASSES
) -> list[tuple[str, np.ndarray]]:
    """(class name, picture) pairs, `per_class` of each class in turn, repeatable by `seed`."""
    if not 1 <= per_class <= 10_000 or not 16 <= side <= 512:
        raise CNNCoreError("per_class must be 1 to 10000 and side 16 to 512", "per_class")
    rng = np.random.default_rng(seed)
    return [(kind, desk_object(kind, rng, side)) for _ in range(per_class) for kind in classes]
