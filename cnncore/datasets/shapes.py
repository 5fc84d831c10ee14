"""Generated shapes: the "a rotated triangle is still a triangle" dataset.

Each image holds one filled outline (circle, square, triangle, cross, star, ring) at a random
position, size, rotation and brightness on a black background. A CNN must learn the shape, not
where it sits or how it is turned — the translation-invariance argument of LeCun et al. (1998),
"Gradient-based learning applied to document recognition", made visible on data a student can
read at a glance.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnncore.errors import CNNCoreError

__all__ = ["SHAPE_CLASSES", "SHAPE_CLASSES_KO", "SHAPE_SIDES", "generate_shapes"]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star", "ring")
# The same classes in Korean, index for index (what a Korean page shows for a prediction)
SHAPE_CLASSES_KO = ("원", "사각형", "삼각형", "십자", "별", "고리")
_RADIUS = (0.22, 0.45)  # of the side
_MARGIN = 1.0  # pixels kept black around the outline
# The sides shapes can be drawn at. The largest outline (radius 0.45·S, plus the margin) must
# fit on both sides of its centre: 2·(0.45·S + 1) ≤ S, so S ≥ 2 / 0.1 = 20.
SHAPE_SIDES = (20, 128)

# Drawn this many times larger, then shrunk with a box filter: anti-aliased edges, so small
# rotations change pixels smoothly instead of flipping whole staircase steps.
_SUPERSAMPLE = 8


def _polygon(kind: str, radius: float) -> list[tuple[float, float]]:
    """Vertices around the origin; `radius` is the circumscribed radius of the outline."""
    if kind == "square":
        return [(radius * math.cos(a), radius * math.sin(a)) for a in _angles(4, math.pi / 4)]
    if kind == "triangle":
        return [(radius * math.cos(a), radius * math.sin(a)) for a in _angles(3, -math.pi / 2)]
    if kind == "star":
        points = []
        for i, a in enumerate(_angles(10, -math.pi / 2)):
            r = radius if i % 2 == 0 else radius * 0.42
            points.append((r * math.cos(a), r * math.sin(a)))
        return points
    if kind == "cross":
        # A plus sign whose arms are a third of its width: 12 vertices, corners at `radius`.
        a, b = radius / math.sqrt(1 + 1 / 9) / 3, radius / math.sqrt(1 + 1 / 9)
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
                (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]  # fmt: skip
    raise AssertionError(kind)


def _angles(count: int, start: float) -> list[float]:
    return [start + 2 * math.pi * i / count for i in range(count)]


def _draw(kind: str, size: int, cx: float, cy: float, radius: float, angle: float,
          value: int) -> np.ndarray:  # fmt: skip
    big = size * _SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    s = _SUPERSAMPLE
    if kind in ("circle", "ring"):
        box = [(cx - radius) * s, (cy - radius) * s, (cx + radius) * s - 1, (cy + radius) * s - 1]
        if kind == "circle":
            draw.ellipse(box, fill=value)
        else:
            draw.ellipse(box, outline=value, width=max(1, round(radius * s * 0.3)))
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        # Pillow puts integer coordinates at pixel centres: shift by half a (big) pixel.
        points = [((cx + x * cos - y * sin) * s - 0.5, (cy + x * sin + y * cos) * s - 0.5)
                  for x, y in _polygon(kind, radius)]  # fmt: skip
        draw.polygon(points, fill=value)
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=np.float32)


def generate_shapes(
    count: int, image_size: int = 28, seed: int = 0, classes: tuple[str, ...] = SHAPE_CLASSES
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`count` images N×1×S×S in [0, 1] with balanced labels, reproducible from `seed`.

    Radius is 22–45 % of the side, the centre keeps the whole outline inside the frame, the
    rotation is uniform in [0, 2π) and the brightness in [0.55, 1].
    """
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if unknown:
        raise CNNCoreError(f"unknown shape {unknown[0]!r}; choose from {SHAPE_CLASSES}", "classes")
    low, high = SHAPE_SIDES
    if not low <= image_size <= high:
        raise CNNCoreError(f"shape images must be {low} to {high} pixels wide", "image_size")
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(classes)
    rng.shuffle(labels)
    images = np.empty((count, 1, image_size, image_size), dtype=np.float32)
    for i, label in enumerate(labels):
        radius = rng.uniform(*_RADIUS) * image_size
        margin = radius + _MARGIN  # keeps the outermost row and column of pixels black
        cx, cy = rng.uniform(margin, image_size - margin, size=2)
        angle = rng.uniform(0.0, 2 * math.pi)
        value = int(rng.uniform(0.55, 1.0) * 255)
        images[i, 0] = _draw(classes[label], image_size, cx, cy, radius, angle, value) / 255.0
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), list(classes)
