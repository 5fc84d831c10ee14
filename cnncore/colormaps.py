"""Colormaps for feature maps: 256-entry uint8 look-up tables (LUTs).

`viridis` is the default: perceptually uniform, readable in greyscale print and by people with
the common forms of colour-blindness (van der Walt & Smith, "mpl colormaps", 2015; CC0).
`magma` is its warmer sibling from the same design, `gray` the plain ramp. The two designed
maps are rebuilt here by linear interpolation between their eleven published anchor colours at
0, 0.1, ..., 1 (the values `viridisLite::viridis(11)` / `magma(11)` print); between anchors the
result stays within a few levels of the full 256-entry tables.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from cnncore.errors import CNNCoreError

__all__ = ["COLORMAPS", "DEFAULT_COLORMAP", "apply_colormap", "colormap", "lut_hex"]

DEFAULT_COLORMAP = "viridis"

# fmt: off
_ANCHORS: dict[str, tuple[str, ...]] = {
    "viridis": ("#440154", "#482576", "#414487", "#35608D", "#2A788E", "#21908C",
                "#22A884", "#43BF71", "#7AD151", "#BBDF27", "#FDE725"),
    "magma": ("#000004", "#140E36", "#3B0F70", "#641A80", "#8C2981", "#B63679",
              "#DE4968", "#F7705C", "#FE9F6D", "#FECF92", "#FCFDBF"),
    "gray": ("#000000", "#FFFFFF"),
}
# fmt: on
COLORMAPS = tuple(_ANCHORS)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@cache
def colormap(name: str) -> np.ndarray:
    """The 256×3 uint8 LUT of a named colormap (read-only). Unknown names → CNNCoreError."""
    if name not in _ANCHORS:
        raise CNNCoreError(
            f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}",
            "colormap",
            code="enum",
            ctx={"expected": list(COLORMAPS)},
        )
    anchors = np.array([_rgb(c) for c in _ANCHORS[name]], dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(anchors))
    levels = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(levels, stops, anchors[:, k]) for k in range(3)], axis=1)
    lut = np.rint(table).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def apply_colormap(levels: np.ndarray, name: str) -> np.ndarray:
    """uint8 levels (any shape) → RGB uint8 (shape + (3,)) through the named LUT."""
    if levels.dtype != np.uint8:
        raise CNNCoreError(
            f"colormap input must be uint8 levels, got {levels.dtype}", code="pixels_not_uint8"
        )
    return colormap(name)[levels]


def lut_hex(name: str) -> list[str]:
    """The LUT as 256 CSS colours, for a legend or to read a value back from a pixel."""
    return ["#{:02x}{:02x}{:02x}".format(*row) for row in colormap(name)]
