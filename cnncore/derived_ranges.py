"""Ranges of a layer that follow exactly from the layer before it, so they need no pass over it.

A layer's per-map ranges (`cnncore.levels`) are an `amin` and an `amax` over every shown value.
Two common layers give ranges that are already known from the layer they read:

- ReLU is monotone and applied value by value, so the lowest output of a map is the ReLU of its
  lowest input and the highest the ReLU of its highest: `(relu(low), relu(high))`. NaN stays NaN
  (torch's `amin`/`amax` and `relu` all pass it on), −∞ becomes 0, +∞ stays +∞.
- Max pooling's outputs are maxima of windows of its input; when the windows together cover every
  input cell (VGG's 2×2 windows with stride 2 on even sizes do), the largest output is the
  largest input: `high` is the input's (NaN included: torch's max pooling passes NaN on). Its
  lowest output is not known that way and is computed (on the smaller output).

Both hold per map (the maps of the two layers are the same channels) and over the whole layer.
The numbers are equal to computed ones (tests compare them on random maps with negative,
all-negative and non-finite values); only the sign of a zero may differ (−0.0 == 0.0), which
changes no level and no shown digit. Derived only from the layer directly before, in the graph
traced once (`derivations`), with the shapes checked at run time (`derived_bounds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import fx, nn

from cnncore.models.layers import module_pairs

__all__ = ["Derivation", "derivations", "derived_bounds", "windows_cover"]

_RELU_FUNCTIONS = {torch.relu, F.relu}


@dataclass(frozen=True)
class Derivation:
    """How a layer's ranges follow from its `source` layer's: 'relu' or 'max_pool' (with the
    pooling's kernel, stride, padding and dilation as (rows, cols) pairs)."""

    rule: str
    source: str
    pool: tuple[tuple[int, int], ...] = ()


def _derivation(node: fx.Node, modules: dict[str, nn.Module], source: str) -> Derivation | None:
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        return Derivation("relu", source)
    if node.op == "call_method" and node.target == "relu":
        return Derivation("relu", source)
    if node.op != "call_module":
        return None
    module = modules[str(node.target)]
    if type(module) is nn.ReLU:
        return Derivation("relu", source)
    if type(module) is nn.MaxPool2d and not module.return_indices:
        pool = module_pairs(module, "kernel_size", "stride", "padding", "dilation")
        return Derivation("max_pool", source, tuple(pool))
    return None


def derivations(graph_module: fx.GraphModule, names: dict[fx.Node, str]) -> dict[str, Derivation]:
    """The layers (by name) whose ranges follow from the layer they read, itself a named layer.

    Only a layer's first argument is its input; a ReLU or max pooling given anything else
    (keyword input, more inputs) is left to be computed."""
    modules = dict(graph_module.named_modules())
    found: dict[str, Derivation] = {}
    for node, name in names.items():
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if isinstance(source, fx.Node) and source in names:
            derivation = _derivation(node, modules, names[source])
            if derivation is not None:
                found[name] = derivation
    return found


@lru_cache(maxsize=512)
def windows_cover(
    size: int, out: int, kernel: int, stride: int, padding: int, dilation: int
) -> bool:
    """True when the `out` windows of a pooling along one axis of `size` cells read every cell
    (window i reads cells i·stride − padding + j·dilation, j < kernel)."""
    read = bytearray(size)
    for i in range(out):
        for j in range(kernel):
            cell = i * stride - padding + j * dilation
            if 0 <= cell < size:
                read[cell] = 1
    return all(read)


def derived_bounds(
    derivation: Derivation,
    source_shape: tuple[int, ...],
    source_ranges: tuple[tuple[float, float], ...],
    output: torch.Tensor,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(low, high) of each shown tile of `output` (one sample's, no batch axis) known from its
    source layer's shape and ranges, float32 like the ranges `layer_levels` computes; None for
    an end that must be computed. The source's shown tiles are the output's (same channels,
    same scaling, same folding into units) whenever the shapes below match."""
    shape = tuple(output.shape)
    if derivation.rule == "relu" and shape == tuple(source_shape):
        bounds = torch.tensor(source_ranges, dtype=torch.float32)
        return torch.relu(bounds[:, 0]), torch.relu(bounds[:, 1])
    if derivation.rule == "max_pool" and _pooled_maps(source_shape, shape, derivation.pool):
        return None, torch.tensor([high for _low, high in source_ranges], dtype=torch.float32)
    return None, None


def _pooled_maps(
    source: tuple[int, ...], shape: tuple[int, ...], pool: tuple[tuple[int, int], ...]
) -> bool:
    """Both are C×H×W maps (not folded units) of the same channels, and the windows cover the
    source along both axes."""
    if len(source) != 3 or len(shape) != 3 or source[0] != shape[0]:
        return False
    if source[1:] == (1, 1) or shape[1:] == (1, 1):
        return False
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pool
    return windows_cover(source[1], shape[1], kh, sh, ph, dh) and windows_cover(
        source[2], shape[2], kw, sw, pw, dw
    )
