"""Colour things: a generated set of varied coloured objects and textures to pretrain a small
colour backbone on, so that a transfer run has colour features to start from.

Sixteen classes — outlines (`star`, `ring`, `triangle`, `cross`, `heart`, `moon`, `leaf`,
`flower`, `arrow`, `house`, `fish`, `tree`, `zigzag`) and textured patches (`stripes`, `checks`,
`dots` on a hexagon) — each drawn in one of its class's three typical colours (brightness
×0.7–1.2, each channel ±25 levels; every colour is typical of several classes, so colour alone
never names one) with a second, random colour for details and textures, at a random size
(18–38 % of the side), position (±20 %) and rotation (any angle), lit from a random side (a
brightness ramp across the object), over one of four random backgrounds (a flat colour, a
linear gradient in any direction, soft blurred blobs, or faint stripes; any hue, saturation and
value), with an overall brightness ×0.7–1.2, a colour cast (each channel ×0.9–1.1), sometimes a
slight blur, and sensor noise (σ 2–8 levels). A network learns colour-sensitive edges, blobs,
outlines and textures from it.

None of the classes is one of the teach flow's benchmark objects
(`cnncore.datasets.desk_objects`: mug, book, ball): a backbone pretrained here and fine-tuned
there is a real transfer (Yosinski et al. 2014, "How transferable are features in deep neural
networks?").
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from cnncore.errors import CNNCoreError

__all__ = [
    "COLOUR_THINGS",
    "COLOUR_THINGS_KO",
    "colour_thing",
    "generate_colour_things",
]

COLOUR_THINGS = ("star", "ring", "triangle", "cross", "heart", "moon", "leaf", "flower", "arrow",
                 "house", "fish", "tree", "zigzag", "stripes", "checks", "dots")  # fmt: skip
# index for index (what a Korean page shows)
COLOUR_THINGS_KO = ("별", "고리", "삼각형", "십자", "하트", "초승달", "나뭇잎", "꽃",
                    "화살표", "집", "물고기", "나무", "지그재그", "줄무늬", "체크무늬",
                    "물방울무늬")  # fmt: skip
_SUPERSAMPLE = 2  # objects drawn twice as large, then shrunk: smooth edges
_NAMED = {
    "red": (200, 40, 40), "orange": (235, 130, 30), "yellow": (235, 210, 50),
    "green": (60, 150, 60), "dark green": (30, 80, 40), "teal": (30, 140, 140),
    "cyan": (70, 190, 220), "blue": (40, 70, 190), "purple": (120, 50, 150),
    "pink": (235, 130, 170), "brown": (120, 75, 40), "white": (235, 235, 230),
    "grey": (140, 140, 145), "black": (35, 35, 40),
}  # fmt: skip
# Each class's typical colours, as real things have them (a leaf is mostly green, a fish often
# orange or silver); every colour belongs to several classes, so colour alone never names one.
_PALETTES = {
    "star": ("yellow", "orange", "white"), "ring": ("yellow", "grey", "red"),
    "triangle": ("red", "blue", "green"), "cross": ("red", "white", "blue"),
    "heart": ("red", "pink", "purple"), "moon": ("yellow", "white", "orange"),
    "leaf": ("green", "dark green", "orange"), "flower": ("pink", "purple", "yellow"),
    "arrow": ("black", "red", "blue"), "house": ("brown", "red", "white"),
    "fish": ("orange", "grey", "cyan"), "tree": ("green", "dark green", "teal"),
    "zigzag": ("cyan", "pink", "yellow"), "stripes": ("black", "red", "teal"),
    "checks": ("black", "blue", "green"), "dots": ("white", "purple", "brown"),
}  # fmt: skip


def _class_colour(rng: np.random.Generator, kind: str) -> tuple[int, int, int]:
    """One of the class's typical colours, brightness ×0.7–1.2 and each channel ± ~25 levels."""
    base = np.array(_NAMED[_PALETTES[kind][int(rng.integers(3))]], dtype=np.float64)
    jittered = base * rng.uniform(0.7, 1.2) + rng.normal(0, 25, 3)
    return tuple(int(c) for c in np.clip(jittered, 0, 255))  # type: ignore[return-value]


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """Any hue; saturation and value spread wide (greys, pastels and deep colours all occur)."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.15, 1.0), rng.uniform(0.25, 1.0)
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """side×side×3 float pixels: flat, a gradient in any direction, soft blobs or faint stripes."""
    kind = int(rng.integers(4))
    base = np.array(_random_colour(rng), dtype=np.float64)
    if kind == 0:
        return np.broadcast_to(base, (side, side, 3)).copy()
    y, x = np.mgrid[0:side, 0:side] / side
    if kind == 1:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle) + 0.71) / 1.42
        other = np.array(_random_colour(rng), dtype=np.float64)
        return base * (1 - ramp[..., None]) + other * ramp[..., None]
    if kind == 2:
        image = Image.fromarray(np.broadcast_to(base, (side, side, 3)).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 7))):
            cx, cy = rng.uniform(0, side, 2)
            r = rng.uniform(0.08, 0.3) * side
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_random_colour(rng))
        return np.asarray(image.filter(ImageFilter.GaussianBlur(side / 16)), dtype=np.float64)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(0.1, 0.4)
    wave = np.sin(2 * math.pi * ((x * math.cos(angle) + y * math.sin(angle)) / period))
    return base * (1 + 0.12 * wave[..., None])


def _star(c: float, r: float, points: int, inner: float) -> list[tuple[float, float]]:
    return [(c + (r if i % 2 == 0 else r * inner) * math.cos(math.pi * i / points - math.pi / 2),
             c + (r if i % 2 == 0 else r * inner) * math.sin(math.pi * i / points - math.pi / 2))
            for i in range(2 * points)]  # fmt: skip


def _texture(kind: str, rng: np.random.Generator, size: int, r: float, a, b) -> Image.Image:
    """A size×size RGB texture of two colours: stripes, checks or dots, 1.5–4 repeats across
    an object of radius r."""
    y, x = np.mgrid[0:size, 0:size] / size
    period = rng.uniform(0.5, 1.3) * r / size
    if kind == "stripes":
        angle = rng.uniform(0, math.pi)
        mask = np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period) > 0
    elif kind == "checks":
        mask = (np.floor(x / period) + np.floor(y / period)) % 2 == 0
    else:  # dots
        u, v = (x / period) % 1 - 0.5, (y / period) % 1 - 0.5
        mask = u * u + v * v < rng.uniform(0.05, 0.12)
    pixels = np.where(mask[..., None], np.array(a), np.array(b)).astype(np.uint8)
    return Image.fromarray(pixels)


def _draw(kind: str, canvas: Image.Image, c: float, r: float, main, other,
          rng: np.random.Generator) -> None:  # fmt: skip
    """`kind` centred at (c, c) with radius r, upright, on the transparent `canvas`."""
    draw, size = ImageDraw.Draw(canvas), canvas.width
    width = max(2, int(r * 0.18))
    if kind == "star":
        draw.polygon(_star(c, r, int(rng.integers(5, 7)), rng.uniform(0.38, 0.5)), fill=main)
    elif kind == "ring":
        draw.ellipse(
            (c - r, c - r, c + r, c + r), outline=main, width=int(r * rng.uniform(0.2, 0.4))
        )
    elif kind == "triangle":
        draw.polygon([(c, c - r), (c + r * 0.87, c + r * 0.5), (c - r * 0.87, c + r * 0.5)],
                     fill=main)  # fmt: skip
    elif kind == "cross":
        t = r * 0.3
        draw.rectangle((c - t, c - r, c + t, c + r), fill=main)
        draw.rectangle((c - r, c - t, c + r, c + t), fill=main)
    elif kind == "heart":
        h = r * 0.5
        draw.ellipse((c - r, c - r * 0.7, c, c - r * 0.7 + r), fill=main)
        draw.ellipse((c, c - r * 0.7, c + r, c - r * 0.7 + r), fill=main)
        draw.polygon([(c - r * 0.97, c - h * 0.2 + h * 0.1), (c + r * 0.97, c - h * 0.2 + h * 0.1),
                      (c, c + r)], fill=main)  # fmt: skip
    elif kind == "moon":
        draw.ellipse((c - r, c - r, c + r, c + r), fill=main)
        shift = r * rng.uniform(0.45, 0.7)
        draw.ellipse((c - r + shift, c - r - shift * 0.3, c + r + shift, c + r - shift * 0.3),
                     fill=(0, 0, 0, 0))  # fmt: skip
    elif kind == "leaf":  # a pointed oval with a vein and a stalk
        w, t = r * rng.uniform(0.35, 0.55), np.linspace(0, 1, 13)
        draw.polygon(
            [(c + w * math.sin(math.pi * v), c - r + 2 * r * v) for v in t]
            + [(c - w * math.sin(math.pi * v), c + r - 2 * r * v) for v in t],
            fill=main,
        )
        draw.line((c, c - r * 0.8, c, c + r * 1.2), fill=other, width=max(1, width // 2))
    elif kind == "flower":
        petals, p = int(rng.integers(5, 8)), r * 0.42
        for i in range(petals):
            a = 2 * math.pi * i / petals
            px, py = c + (r - p) * math.cos(a), c + (r - p) * math.sin(a)
            draw.ellipse((px - p, py - p, px + p, py + p), fill=main)
        draw.ellipse((c - p * 0.8, c - p * 0.8, c + p * 0.8, c + p * 0.8), fill=other)
    elif kind == "arrow":
        t = r * 0.22
        draw.rectangle((c - r, c - t, c + r * 0.2, c + t), fill=main)
        draw.polygon([(c + r, c), (c + r * 0.1, c - r * 0.6), (c + r * 0.1, c + r * 0.6)],
                     fill=main)  # fmt: skip
    elif kind == "house":
        draw.rectangle((c - r * 0.7, c - r * 0.1, c + r * 0.7, c + r), fill=main)
        draw.polygon([(c - r * 0.95, c - r * 0.1), (c + r * 0.95, c - r * 0.1), (c, c - r)],
                     fill=other)  # fmt: skip
        draw.rectangle((c - r * 0.15, c + r * 0.4, c + r * 0.15, c + r), fill=other)
    elif kind == "fish":
        draw.ellipse((c - r * 0.8, c - r * 0.45, c + r * 0.6, c + r * 0.45), fill=main)
        draw.polygon([(c + r * 0.45, c), (c + r, c - r * 0.5), (c + r, c + r * 0.5)], fill=main)
        e = r * 0.09
        draw.ellipse((c - r * 0.5 - e, c - r * 0.12 - e, c - r * 0.5 + e, c - r * 0.12 + e),
                     fill=other)  # fmt: skip
    elif kind == "tree":
        draw.rectangle((c - r * 0.15, c + r * 0.3, c + r * 0.15, c + r), fill=other)
        draw.polygon([(c, c - r), (c + r * 0.7, c + r * 0.4), (c - r * 0.7, c + r * 0.4)],
                     fill=main)  # fmt: skip
    elif kind == "zigzag":
        steps = int(rng.integers(3, 6))
        draw.line([(c - r + 2 * r * i / steps, c + (r * 0.5 if i % 2 else -r * 0.5))
                   for i in range(steps + 1)], fill=main, width=width, joint="curve")  # fmt: skip
    else:  # a textured patch: a hexagon of two colours
        patch = _texture(kind, rng, size, r, main, other)
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).regular_polygon((c, c, r), 6, fill=255)
        canvas.paste(patch, (0, 0), mask)


def colour_thing(kind: str, rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """One picture (side×side×3 uint8) of `kind` over a random background."""
    if kind not in COLOUR_THINGS:
        raise CNNCoreError(f"unknown colour thing {kind!r}; choose from {COLOUR_THINGS}", "kind")
    big = side * _SUPERSAMPLE
    canvas = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    main, other = _class_colour(rng, kind), _random_colour(rng)
    c, r = big / 2, big * rng.uniform(0.18, 0.38)
    _draw(kind, canvas, c, r, main, other, rng)
    canvas = canvas.rotate(float(rng.uniform(0, 360)), Image.Resampling.BILINEAR)
    # lit from a random side: brightness ×0.7 → ×1.2 across the object
    y, x = np.mgrid[0:big, 0:big] / big
    angle = rng.uniform(0, 2 * math.pi)
    light = 0.95 + 0.25 * ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)) * 2
    pixels = np.asarray(canvas, dtype=np.float64)
    pixels[..., :3] = np.clip(pixels[..., :3] * light[..., None], 0, 255)
    thing = Image.fromarray(pixels.astype(np.uint8), "RGBA").resize(
        (side, side), Image.Resampling.BOX
    )
    picture = Image.fromarray(np.clip(_background(rng, side), 0, 255).astype(np.uint8))
    dx, dy = (int(v) for v in rng.uniform(-0.2, 0.2, 2) * side)
    picture.paste(thing, (dx, dy), thing)
    if rng.uniform() < 0.3:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    out = np.asarray(picture, dtype=np.float64) * rng.uniform(0.7, 1.2)  # overall light
    out *= rng.uniform(0.9, 1.1, 3)  # colour cast
    out += rng.normal(0, rng.uniform(2, 8), out.shape)  # sensor noise
    return np.clip(out, 0, 255).astype(np.uint8)


def generate_colour_things(
    per_class: int, side: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`per_class` pictures of each class, N×3×S×S in [0, 1] (classes in turn), their labels
    and the class names; repeatable by `seed`."""
    if not 1 <= per_class <= 5_000 or not 16 <= side <= 256:
        raise CNNCoreError("per_class must be 1 to 5000 and side 16 to 256", "per_class")
    rng = np.random.default_rng(seed)
    count = per_class * len(COLOUR_THINGS)
    images = np.empty((count, side, side, 3), dtype=np.uint8)
    for i in range(count):
        images[i] = colour_thing(COLOUR_THINGS[i % len(COLOUR_THINGS)], rng, side)
    labels = torch.arange(count) % len(COLOUR_THINGS)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return pixels.contiguous(), labels, list(COLOUR_THINGS)
