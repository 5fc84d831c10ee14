"""One unit of a real network written out: how its number came from the previous layer's values.

A unit is (layer, channel, y, x) of a captured forward pass (`capture_activations`, or the float
copies `cnncore.features.learned_feature_maps` keeps beside its pictures). Its computation reads
the layer's module (weights, batch-norm statistics, pooling window) and the *actual* values of
the layer's inputs, and writes every term out in float64, so the printed total equals the
captured float32 activation to rounding (tests: every layer type of every zoo model).

A layer without a spatial extent (a linear layer's n outputs, C channels of 1×1 after global
pooling, a flatten) numbers its units by `channel` with y = x = 0, as the feature pictures fold
them. Inputs are named like layers; the picture itself (after preprocessing) is `INPUT`, where
walking backwards ends.

Per kind (`cnncore.unit_layers`): convolution (grouped, depthwise, strided, padded, dilated, 1×1
— the window per input channel, padding marked, kernel, products, per-channel sums, bias),
transposed convolution (every input tap that lands on the unit), batch norm (running mean and
variance, γ, β, ε), activation, identity/dropout, max and average pooling (adaptive and global
included), residual add (each operand and where it came from), concatenation (which branch and
channel), flatten, and linear (the largest contributions, then the rest summed; the model's
output also gets its softmax). What is written out is capped (`max_channels`, `max_terms`): the
rest is summed into one number, so the total stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx

from cnncore.errors import CNNCoreError
from cnncore.features import LayerGraph, capture_layers

__all__ = [
    "INPUT",
    "ActivationCollector",
    "Activations",
    "UnitComputation",
    "capture_activations",
    "layer_sources",
    "unit_computation",
]

INPUT = "_input"  # the preprocessed picture: a leading underscore never starts a module path


@dataclass(frozen=True)
class Activations:
    """Float32 outputs of one forward pass (batch axis dropped), by layer name.

    `sources[name]` names the tensors the layer read, in argument order (`INPUT` for the
    picture); `output` is the layer whose value the model returned (its logits).
    """

    values: dict[str, torch.Tensor]
    sources: dict[str, tuple[str, ...]]
    output: str | None
    complete: bool = True  # every layer kept (else only some: see `covers`)

    def covers(self, layer: str) -> bool:
        """Whether the layer and everything it reads were kept."""
        needed = (layer, *self.sources.get(layer, ()))
        return all(name in self.values for name in needed)

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.values.values())


@dataclass(frozen=True)
class UnitComputation:
    """One unit's value and the terms it was computed from.

    `kind` says which terms `detail` holds (`cnncore.unit_layers`); `total` is the recomputed
    float64 value, `value` the captured one (equal to rounding).
    """

    layer: str
    type: str
    kind: str
    channel: int
    y: int
    x: int
    shape: tuple[int, ...]
    value: float
    total: float
    sources: tuple[str, ...]
    detail: Any


def layer_sources(layers: LayerGraph) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """({layer: names of the tensors it reads}, the layer the model returns)."""
    names = layers.names
    sources: dict[str, tuple[str, ...]] = {}
    output = None
    for node in layers.graph_module.graph.nodes:
        read: list[str] = []

        def note(arg: fx.Node, read: list[str] = read) -> fx.Node:
            if arg.op == "placeholder":
                read.append(INPUT)
            elif arg in names:
                read.append(names[arg])
            return arg

        fx.node.map_arg((node.args, node.kwargs), note)
        if node in names:
            sources[names[node]] = tuple(read)
        elif node.op == "output" and len(read) == 1:
            output = read[0]
    return sources, output


class ActivationCollector:
    """A `keep` for a capture: the picture and each layer's float output, without copying.

    An output is held as it is (the capture frees nothing it still needs), with its version
    counter: a layer that a later in-place operation overwrote (`ReLU(inplace=True)` on a conv's
    output) is found when `activations` is asked and dropped, and the result is then not
    `complete` (`overwritten` says why; `capture_activations` then runs again with `copy`).
    Copied instead, as floats on the CPU: with `copy`, an output on another device or without a
    version counter (made in inference mode), and a view into a larger tensor (so no more is
    held than is counted). Keeping stops once it would pass `max_bytes` (the result is then not
    `complete`); names in `wanted` are kept whatever the budget, so one unit's layer and inputs
    are always there.
    """

    def __init__(
        self, max_bytes: int | None = None, wanted: tuple[str, ...] = (), *, copy: bool = False
    ) -> None:
        self.max_bytes, self.wanted, self.copy = max_bytes, set(wanted), copy
        self.values: dict[str, torch.Tensor] = {}
        self.versions: dict[str, int] = {}  # of the values held without a copy
        self.nbytes, self.complete, self.overwritten = 0, True, False

    def __call__(self, name: str | None, value: torch.Tensor) -> None:
        key = name or INPUT
        size = value.numel() * value.element_size()
        if not (
            self.max_bytes is None or self.nbytes + size <= self.max_bytes or key in self.wanted
        ):
            self.complete = False
            return
        kept = value.detach()[0]
        if (
            self.copy
            or kept.device.type != "cpu"
            or kept.is_inference()
            or kept.untyped_storage().nbytes() > size
        ):
            self.values[key] = kept.to("cpu", copy=True)
            self.versions.pop(key, None)
        else:
            self.values[key], self.versions[key] = kept, kept._version
        self.nbytes += size

    def activations(self, layers: LayerGraph) -> Activations:
        sources, output = layer_sources(layers)
        changed = [key for key, seen in self.versions.items() if self.values[key]._version != seen]
        self.overwritten = self.overwritten or bool(changed)
        values = {key: v for key, v in self.values.items() if key not in changed}
        return Activations(values, sources, output, self.complete and not changed)


def capture_activations(
    layers: LayerGraph,
    picture: torch.Tensor,
    *,
    max_bytes: int | None = None,
    wanted: tuple[str, ...] = (),
) -> Activations:
    """Run `picture` (1×C×H×W, preprocessed) once and keep every layer's float output (up to
    `max_bytes`, `wanted` always); once more with copies if an in-place layer overwrote one."""
    for copy in (False, True):
        collector = ActivationCollector(max_bytes, wanted, copy=copy)
        collector(None, picture)
        capture_layers(layers, picture, collector, versioned=True)
        found = collector.activations(layers)
        if not collector.overwritten:
            break
    return found


def _unit_index(shape: tuple[int, ...], layer: str, channel: int, y: int, x: int) -> tuple:
    """The index of the unit in a layer's output, or a refusal naming the field outside."""
    if len(shape) == 3:
        bounds = {"channel": (channel, shape[0]), "y": (y, shape[1]), "x": (x, shape[2])}
        index: tuple = (channel, y, x)
    else:
        units = math.prod(shape)
        bounds = {"channel": (channel, units), "y": (y, 1), "x": (x, 1)}
        # numpy's unravel: torch.unravel_index imports torch._dynamo on first use (seconds)
        inside = 0 <= channel < units
        index = tuple(int(i) for i in np.unravel_index(channel, shape)) if inside else ()
    for field, (value, size) in bounds.items():
        if not 0 <= value < size:
            raise CNNCoreError(
                f"{field} {value} is outside layer {layer} (size {size} along {field}); "
                f"choose 0 to {size - 1}",
                field,
                code="unit_outside_map",
                ctx={"layer": layer, "size": size, "count": value},
            )
    return index


def unit_computation(
    layers: LayerGraph,
    activations: Activations,
    layer: str,
    channel: int,
    y: int = 0,
    x: int = 0,
    *,
    max_channels: int = 16,
    max_terms: int = 16,
) -> UnitComputation:
    """How unit (channel, y, x) of `layer` was computed from its inputs' captured values.

    Unknown layers and units outside the map are refused (`CNNCoreError` naming `layer`,
    `channel`, `y` or `x`); a layer whose values were not kept raises KeyError.
    """
    from cnncore.unit_layers import compute_unit  # the per-kind terms live beside this module

    if layer not in activations.sources:
        raise CNNCoreError(
            f"no layer named {layer!r} in this model; layers are {', '.join(activations.sources)}",
            "layer", code="unknown_layer",
            ctx={"expected": list(activations.sources)},  # the model's names, never what was sent
        )  # fmt: skip
    if not activations.covers(layer):
        raise KeyError(layer)  # the caller captures this layer and its inputs, then asks again
    out = activations.values[layer]
    shape = tuple(out.shape)
    index = _unit_index(shape, layer, channel, y, x)
    node = next(n for n, name in layers.names.items() if name == layer)
    with torch.no_grad():  # parameters read as numbers, never recorded for a gradient
        kind, total, detail = compute_unit(
            layers, activations, node, layer, index, max_channels=max_channels,
            max_terms=max_terms,
        )  # fmt: skip
    return UnitComputation(
        layer,
        layers.types[layer],
        kind,
        channel,
        y,
        x,
        shape,
        float(out[index]),
        float(total),
        activations.sources.get(layer, ()),
        detail,
    )
