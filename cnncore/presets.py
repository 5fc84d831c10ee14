"""Named 3×3 kernels and small sample inputs for the convolution explorer.

The kernels are the textbook image filters: Sobel (Sobel & Feldman 1968), the 4-neighbour
Laplacian, box and Gaussian blurs, sharpen and emboss as in Gonzalez & Woods, "Digital Image
Processing" (4th ed., ch. 3), and the vertical / horizontal edge detectors of Ng's "Convolutional
Neural Networks" course. The inputs come from data shipped with scikit-learn (no download): a
handwritten digit from `load_digits` (UCI optical digits, 8×8) and a patch of `china.jpg`, plus
generated shapes whose edges the kernels make visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["InputPreset", "KernelPreset", "preset_kernels", "sample_inputs"]


@dataclass(frozen=True)
class KernelPreset:
    name: str
    values: torch.Tensor  # k×k, float64


@dataclass(frozen=True)
class InputPreset:
    name: str
    values: torch.Tensor  # C×H×W, float64 in [0, 1]

    @property
    def channels(self) -> int:
        return self.values.shape[0]


_KERNELS: dict[str, tuple[list[list[float]], float]] = {  # name: (integer taps, scale)
    "identity": ([[0, 0, 0], [0, 1, 0], [0, 0, 0]], 1),
    "vertical_edge": ([[1, 0, -1], [1, 0, -1], [1, 0, -1]], 1),
    "horizontal_edge": ([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], 1),
    "sobel_x": ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], 1),
    "sobel_y": ([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], 1),
    "laplacian": ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], 1),
    "box_blur": ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 9),
    "gaussian": ([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16),  # [1, 2, 1] ⊗ [1, 2, 1] / 16
    "sharpen": ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 1),
    "emboss": ([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], 1),
}

# rows 94–101, columns 140–147 of china.jpg: sky, the green eave of the pagoda's top roof and
# its orange tiles, so each colour channel shows a different edge.
_PATCH_TOP, _PATCH_LEFT, _PATCH_SIZE = 94, 140, 8


@lru_cache(maxsize=1)
def preset_kernels() -> tuple[KernelPreset, ...]:
    """The named 3×3 kernels, in teaching order (identity first)."""
    return tuple(
        KernelPreset(name, torch.tensor(taps, dtype=torch.float64) / scale)
        for name, (taps, scale) in _KERNELS.items()
    )


def _digit() -> torch.Tensor:
    from sklearn.datasets import load_digits  # imported late: only this preset needs it

    digits = load_digits()
    first_seven = int((torch.as_tensor(digits.target) == 7).nonzero()[0])
    # pixel counts go 0..16 in this data set
    return torch.tensor(digits.images[first_seven], dtype=torch.float64)[None] / 16


def _rgb_patch() -> torch.Tensor:
    from sklearn.datasets import load_sample_image

    image = torch.tensor(load_sample_image("china.jpg"), dtype=torch.float64)  # H×W×3 (a copy)
    rows = slice(_PATCH_TOP, _PATCH_TOP + _PATCH_SIZE)
    cols = slice(_PATCH_LEFT, _PATCH_LEFT + _PATCH_SIZE)
    return image[rows, cols].permute(2, 0, 1) / 255


def _square() -> torch.Tensor:
    square = torch.zeros(1, 7, 7, dtype=torch.float64)
    square[0, 1:6, 1:6] = 1
    square[0, 2:5, 2:5] = 0  # an outline: edges in all four directions
    return square


def _cross() -> torch.Tensor:
    cross = torch.zeros(1, 7, 7, dtype=torch.float64)
    cross[0, 3, 1:6] = 1
    cross[0, 1:6, 3] = 1
    return cross


def _step_edge() -> torch.Tensor:
    # Ng's vertical-edge example: bright left half, dark right half.
    edge = torch.zeros(1, 6, 6, dtype=torch.float64)
    edge[0, :, :3] = 1
    return edge


@lru_cache(maxsize=1)
def sample_inputs() -> tuple[InputPreset, ...]:
    """Small inputs in [0, 1], rounded to two decimals so every cell reads easily."""
    builders = {
        "digit": _digit,
        "square": _square,
        "cross": _cross,
        "step_edge": _step_edge,
        "rgb_patch": _rgb_patch,
    }
    return tuple(
        InputPreset(name, torch.round(build(), decimals=2)) for name, build in builders.items()
    )
