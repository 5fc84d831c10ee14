"""Feature maps: run a network once, keep every layer's output, turn each into a small picture.

Capture follows torchvision's `create_feature_extractor` (torchvision/models/feature_extraction.py):
the model is traced once with `torch.fx` and its graph is *read*, never changed, so the shared model
carries no hooks and no per-request state. A copy of the graph, compiled once, takes the request's
own `keep` function as an argument and hands it every layer's output the moment it exists; each
value is freed when no later layer needs it (memory as in a plain forward pass). Two requests at
the same time therefore never see each other's maps.

A layer's name is its dotted module path (`layer1.0.conv1`), as in the model summaries; functions
between modules (the residual `add`, the inception `cat`) are named inside their block
(`layer1.0.add`), and a second call of the same module or function gets `_1`, torchvision's rule.

Pictures are uint8 *levels* (0..255) per channel, scaled from each channel's own range or from
the whole layer's; a colormap turns them into RGB only when an atlas (channels tiled in a grid)
is drawn.
The level and the range give the value back: value = low + level/255 · (high − low).
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from cnncore.colormaps import apply_colormap
from cnncore.derived_ranges import Derivation, derivations, derived_bounds
from cnncore.errors import CNNCoreError
from cnncore.images import (
    MAX_RESIZED_PIXELS,
    DecodedImage,
    Preprocessed,
    PreprocessStep,
    preprocess,
)
from cnncore.levels import NORMALISATIONS, HeldFloats, LayerLevels, Scratch, layer_levels
from cnncore.weights import LoadedModel, WeightsInfo

if TYPE_CHECKING:
    from cnncore.presets import KernelPreset

__all__ = [
    "HANDCRAFTED_SIZE",
    "MODES",
    "NORMALISATIONS",
    "FILTERS_PICTURE",
    "STEP_PICTURE",
    "FeatureMaps",
    "HeldFloats",
    "LayerGraph",
    "LayerLevels",
    "OwnThreadTracer",
    "Prediction",
    "Scratch",
    "atlas_rgb",
    "capture_layers",
    "filter_levels",
    "filters_rgb",
    "handcrafted_feature_maps",
    "layer_levels",
    "learned_feature_maps",
    "picture_names",
    "prepare_input",
    "render_picture",
    "top_predictions",
    "trace_layers",
    "traced_alone",
]

MODES = ("learned", "handcrafted")
HANDCRAFTED_SIZE = 224  # side of the picture the designed filters are applied to
# Names of the pictures that are not layers; a leading underscore never starts a module path.
FILTERS_PICTURE = "_filters"
STEP_PICTURE = "_input_{}"
ATLAS_GAP = 1  # pixels between tiles
GAP_COLOUR = (255, 255, 255)
# Nodes that only read shapes or pick items: never a layer a student would look at.
_SKIPPED_FUNCTIONS = {getattr, operator.getitem, len}
_SKIPPED_METHODS = {"size", "dim", "numel"}


@dataclass(frozen=True)
class LayerGraph:
    """A model traced once: its graph module and the layer name of every captured node."""

    graph_module: fx.GraphModule
    names: dict[fx.Node, str]
    types: dict[str, str]  # layer name → module class or function name
    # the same graph with a call handing each layer's output to a `keep` argument (`_capturing`)
    capturing: fx.GraphModule
    # layers whose ranges follow from the layer they read (`cnncore.derived_ranges`)
    derived: dict[str, Derivation] = field(default_factory=dict)

    @property
    def layer_names(self) -> list[str]:
        return list(self.names.values())


def _scope(node: fx.Node) -> str:
    """Dotted path of the module whose forward made this node (`layer1.0`), '' at the top."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = next(reversed(stack.values()))[0]
    return str(path)


class OwnThreadTracer(fx.Tracer):
    """A tracer that records only its own thread's module calls.

    While `Tracer.trace` runs, torch.fx patches `nn.Module.__call__` and `__getattr__` for the
    whole process, so a forward pass running at that moment in another request's thread would be
    routed into this trace (and fail: "module is not installed as a submodule"). Calls from other
    threads are passed straight through to the original module call instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # a module that is one step for a student (googlenet's input transform) says so
        return getattr(m, "fx_leaf", False) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):  # noqa: ANN001, D102
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):  # noqa: ANN001, D102
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


# torch.fx keeps the trace in progress's patcher in one process-wide global (CURRENT_PATCHER):
# two traces at once undo each other's patches and one of them fails, so traces take turns.
_TRACING = threading.Lock()


def traced_alone(tracer: fx.Tracer, root: nn.Module) -> fx.Graph:
    """`tracer.trace(root)` while no other thread traces: torch.fx keeps its patching state in one
    global, so two traces at once break each other. Pass an `OwnThreadTracer` (or a subclass) so
    that forward passes in other threads meanwhile are not recorded either."""
    with _TRACING:
        return tracer.trace(root)


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """`torch.fx.symbolic_trace`, safe beside forward passes and other traces in other threads; a
    model fx cannot trace is refused with a `CNNCoreError` naming `model`."""
    tracer = OwnThreadTracer()
    try:
        graph = traced_alone(tracer, model)
        return fx.GraphModule(tracer.root, graph, model.__class__.__name__)
    except Exception as exc:  # fx raises many kinds for untraceable Python control flow
        raise CNNCoreError(f"this model cannot be traced by torch.fx: {exc}", "model") from exc


def trace_layers(model: nn.Module) -> LayerGraph:
    """Trace `model` (in eval mode) with torch.fx and name every node that is a layer output."""
    was_training = model.training
    model.eval()  # branches on `self.training` (auxiliary heads) are fixed at trace time
    try:
        graph_module = symbolic_trace(model)
    finally:
        model.train(was_training)
    modules = dict(graph_module.named_modules())
    names: dict[fx.Node, str] = {}
    types: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            base, kind = str(node.target), type(modules[node.target]).__name__
        elif node.op == "call_function" and node.target not in _SKIPPED_FUNCTIONS:
            kind = getattr(node.target, "__name__", str(node.target)).strip("_")
            base = f"{_scope(node)}.{kind}".lstrip(".")
        elif node.op == "call_method" and node.target not in _SKIPPED_METHODS:
            kind = str(node.target)
            base = f"{_scope(node)}.{kind}".lstrip(".")
        else:
            continue
        name, repeat = base, 0
        while name in types:
            repeat += 1
            name = f"{base}_{repeat}"
        names[node] = name
        types[name] = kind
    derived = derivations(graph_module, names)
    return LayerGraph(graph_module, names, types, _capturing(graph_module, names), derived)


def _kept(keep: Callable[[str, torch.Tensor], None], name: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        keep(name, value)


def _capturing(graph_module: fx.GraphModule, names: dict[fx.Node, str]) -> fx.GraphModule:
    """A copy of the traced graph taking a `keep` function first and calling `keep(name,
    output)` after each named layer, compiled to Python as any traced module is: a capture
    runs as fast as the model's own forward instead of node by node through an
    `fx.Interpreter` (~1.3 ms of CPU over VGG-16's 40 layers). Values are dropped after their
    last use, as in the interpreter; the traced module and its graph are not changed."""
    graph = fx.Graph()
    keep = graph.placeholder("cnnviz_keep")
    copied: dict[fx.Node, fx.Node] = {}
    for node in graph_module.graph.nodes:
        if node.op == "output":
            graph.output(fx.map_arg(node.args[0], copied.__getitem__))
            continue
        copied[node] = graph.node_copy(node, copied.__getitem__)
        if node in names:
            graph.call_function(_kept, (keep, names[node], copied[node]))
    return fx.GraphModule(graph_module, graph, f"{type(graph_module).__name__}Capture")


def capture_layers(
    layers: LayerGraph,
    x: torch.Tensor,
    keep: Callable[[str, torch.Tensor], Any] | None = None,
    *,
    versioned: bool = False,
) -> tuple[dict[str, Any], Any]:
    """Run once; return ({layer name: keep(name, output)}, the model's own output).

    `keep` defaults to a detached copy of the output (batch included). The graph module is only
    read, so any number of threads may capture through the same `LayerGraph` at once.
    `versioned`: run with gradients off but outside inference mode, so the outputs carry version
    counters and a `keep` that holds references can tell when a later in-place layer overwrote
    one (inference tensors have none).
    """
    keep = keep or (lambda _name, value: value.detach().clone())
    kept: dict[str, Any] = {}

    def keeping(name: str, value: torch.Tensor) -> None:
        kept[name] = keep(name, value)

    with torch.no_grad() if versioned else torch.inference_mode():
        output = layers.capturing(keeping, x)
    return kept, output


def atlas_grid(count: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding `count` tiles."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / cols)), cols


def atlas_rgb(levels: np.ndarray, colormap: str | None) -> np.ndarray:
    """Tile (n, h, w) uint8 levels into one RGB atlas with 1-pixel white gaps.

    `colormap` None means the levels are already RGB: (n, h, w, 3).
    Tile i sits at row i // cols, column i % cols; its top-left pixel is at
    (row · (h + gap), col · (w + gap)).
    """
    rgb = levels if colormap is None else apply_colormap(levels, colormap)
    count, height, width = rgb.shape[:3]
    rows, cols = atlas_grid(count)
    step_h, step_w = height + ATLAS_GAP, width + ATLAS_GAP
    atlas = np.empty((rows * step_h - ATLAS_GAP, cols * step_w - ATLAS_GAP, 3), np.uint8)
    atlas[...] = GAP_COLOUR
    for index in range(count):
        top, left = (index // cols) * step_h, (index % cols) * step_w
        atlas[top : top + height, left : left + width] = rgb[index]
    return atlas


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first Conv2d in module order: the filters that look at the picture itself."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


def filter_levels(weight: torch.Tensor, max_filters: int = 64) -> np.ndarray:
    """First-layer filters (out, in, k, k) → uint8 pictures (n, k, k, 3).

    As in Krizhevsky et al. 2012 (Fig. 3) and Zeiler & Fergus 2014: colour filters (3 input
    channels) shown as RGB, one shared scale over all filters so weak filters look weak; a zero
    weight is mid-grey. Grey-input filters are repeated over R, G and B; other channel counts
    show their first input channel.
    """
    w = weight.detach().float()[:max_filters].cpu()
    w = w[:, :3] if w.shape[1] == 3 else w[:, :1].expand(-1, 3, -1, -1)
    bound = float(w.abs().max())
    scaled = w / bound * 127.5 + 127.5 if bound > 0 else torch.full_like(w, 127.5)
    return scaled.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def filters_rgb(model: nn.Module, max_filters: int = 64) -> np.ndarray | None:
    """The atlas of the model's first convolution's filters, or None if it has no conv."""
    found = first_conv(model)
    if found is None:
        return None
    return atlas_rgb(filter_levels(found[1].weight, max_filters), None)


@dataclass(frozen=True)
class Prediction:
    label: str
    prob: float
    index: int = -1  # the class's position in the model's output (-1: not known)


def top_predictions(logits: torch.Tensor, labels: list[str], k: int = 5) -> list[Prediction]:
    """The k most probable classes after softmax over one sample's logits."""
    probs = torch.softmax(logits.detach().float().reshape(-1), dim=0)
    if probs.numel() != len(labels):
        raise CNNCoreError(f"the model gives {probs.numel()} scores for {len(labels)} labels")
    values, indices = probs.topk(min(k, probs.numel()))
    pairs = zip(values.tolist(), indices.tolist(), strict=True)
    return [Prediction(labels[i], float(p), i) for p, i in pairs]


@dataclass(frozen=True)
class FeatureMaps:
    """Everything one picture through one model gives: steps, layers, filters, predictions."""

    model: str
    mode: str  # learned | handcrafted
    normalise: str
    input_shape: tuple[int, int, int]
    preprocessing: tuple[PreprocessStep, ...]
    layers: tuple[LayerLevels, ...]
    filters: np.ndarray | None  # RGB atlas of the first layer's (or the designed) filters
    predictions: tuple[Prediction, ...] | None
    # what the network was given (1×C×H×W float32, learned mode): a unit's computation can run
    # the model again from it without the decoded picture, which may be 120 MB
    network_input: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        pictures = sum(step.nbytes for step in self.preprocessing)  # made or not
        pictures += self.filters.nbytes if self.filters is not None else 0
        given = self.network_input
        extra = given.numel() * given.element_size() if given is not None else 0
        return sum(layer.nbytes for layer in self.layers) + pictures + extra

    @property
    def deferred(self) -> bool:
        """True while some layer's levels or some step's preview are still to be made."""
        steps = any(step.pending for step in self.preprocessing)
        return steps or any(layer.deferred for layer in self.layers)

    def settle(self) -> None:
        """Make every deferred level (one float buffer lent to all layers) and preview now."""
        for step in self.preprocessing:
            step.preview  # noqa: B018 (made on first access)
        scratch = Scratch()
        for layer in self.layers:
            layer.settle(scratch)


def prepare_input(
    weights: WeightsInfo, image: DecodedImage, max_resized_pixels: int = MAX_RESIZED_PIXELS
) -> Preprocessed:
    """The picture as these weights expect it: their input size, channels and normalisation."""
    channels, height, width = weights.input_shape
    return preprocess(
        image,
        size=(height, width),
        channels=channels,
        mean=weights.mean,
        std=weights.std,
        resize_ratio=weights.resize_ratio,
        max_resized_pixels=max_resized_pixels,
    )


def learned_feature_maps(
    loaded: LoadedModel,
    layers: LayerGraph,
    image: DecodedImage,
    *,
    normalise: str = "per_channel",
    max_channels: int = 64,
    top_k: int = 5,
    also_keep: Callable[[str | None, torch.Tensor], None] | None = None,
    max_resized_pixels: int = MAX_RESIZED_PIXELS,
    deferred: HeldFloats | None = None,
) -> FeatureMaps:
    """Preprocess as the weights expect, run once, keep every layer as uint8 levels.

    `also_keep(name, value)` sees the preprocessed picture (name None) and then every layer's
    float output before it becomes levels (`cnncore.unit` keeps the floats this way, so a
    unit's computation needs no second forward pass); the pass then runs `versioned` (see
    `capture_layers`), so it may hold the outputs themselves rather than copies.

    Each output becomes levels the moment it is computed (and is then freed by the
    interpreter), so a request holds one float activation at a time plus small uint8 maps.
    With `deferred`, only the ranges are made then: each layer's shown floats are held (within
    that budget) until its levels are first asked for or `FeatureMaps.settle` makes them all
    (see `cnncore.levels`); should a later in-place layer overwrite a held output, the pass runs
    again making every layer's levels at once.
    Predictions only when the weights know their class names (trained or a state dict).
    """
    weights = loaded.weights
    prepared = prepare_input(weights, image, max_resized_pixels)
    parameter = next(loaded.model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    picture = prepared.tensor.to(device)
    if also_keep is not None:
        also_keep(None, picture)

    def run(held: HeldFloats | None, extra: Callable | None) -> tuple[dict, Any]:
        scratch = Scratch()
        made: dict[str, LayerLevels] = {}

        def keep(name: str, value: torch.Tensor) -> LayerLevels:
            if extra is not None:
                extra(name, value)
            low = high = None
            derivation = layers.derived.get(name)
            source = made.get(derivation.source) if derivation is not None else None
            if source is not None:
                low, high = derived_bounds(derivation, source.shape, source.ranges, value[0])
            made[name] = layer_levels(
                name,
                layers.types[name],
                value[0],
                normalise=normalise,
                max_channels=max_channels,
                scratch=scratch,
                deferred=held,
                low=low,
                high=high,
            )
            return made[name]

        versioned = extra is not None or held is not None
        return capture_layers(layers, picture, keep, versioned=versioned)

    kept, output = run(deferred, also_keep)
    if any(layer.overwritten for layer in kept.values()):
        for layer in kept.values():
            layer.let_go()
        kept, output = run(None, None)  # levels made as each output appears, before any change
    predictions = None
    if weights.labels and isinstance(output, torch.Tensor):
        predictions = tuple(top_predictions(output[0], list(weights.labels), top_k))
    return FeatureMaps(
        loaded.name,
        "learned",
        normalise,
        weights.input_shape,
        prepared.steps,
        tuple(kept.values()),
        filters_rgb(loaded.model, max_channels),
        predictions,
        prepared.tensor,
    )


def handcrafted_feature_maps(
    model: str,
    image: DecodedImage,
    kernels: tuple[KernelPreset, ...],
    *,
    normalise: str = "per_channel",
    size: int = HANDCRAFTED_SIZE,
    max_resized_pixels: int = MAX_RESIZED_PIXELS,
) -> FeatureMaps:
    """Apply each designed kernel to the R, G and B channels separately (a depthwise conv).

    Pixels in [0, 1], no normalisation; borders padded by repeating the edge pixel, so the
    frame of the picture does not show up as an edge. Each kernel is one "layer" of three maps,
    its picture drawn with its own scale (a blur's 1/9 taps and emboss's 2 both stay visible).
    """
    unit = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    prepared = preprocess(
        image,
        size=(size, size),
        channels=3,
        mean=unit[0],
        std=unit[1],
        max_resized_pixels=max_resized_pixels,
    )
    x = prepared.tensor
    maps: list[LayerLevels] = []
    pictures: list[np.ndarray] = []
    for kernel in kernels:
        taps = kernel.values.to(torch.float32)
        k = taps.shape[-1]
        padded = F.pad(x, (k // 2, k - 1 - k // 2, k // 2, k - 1 - k // 2), mode="replicate")
        out = F.conv2d(padded, taps.expand(3, 1, k, k), groups=3)
        maps.append(layer_levels(kernel.name, "Conv2d", out[0], normalise=normalise))
        pictures.append(filter_levels(taps[None, None])[0])
    filters = atlas_rgb(np.stack(pictures), None) if pictures else None
    # The last step (normalise with mean 0, std 1) changes nothing here: leave it out.
    return FeatureMaps(
        model,
        "handcrafted",
        normalise,
        (3, size, size),
        prepared.steps[:-1],
        tuple(maps),
        filters,
        None,
    )


def picture_names(maps: FeatureMaps) -> list[str]:
    """Every picture of a result by name: preprocessing steps, the filters, then the layers."""
    names = [STEP_PICTURE.format(step.step) for step in maps.preprocessing]
    names += [FILTERS_PICTURE] if maps.filters is not None else []
    return names + [layer.name for layer in maps.layers]


def render_picture(
    maps: FeatureMaps, name: str, colormap: str, channel: int | None = None
) -> np.ndarray:
    """The RGB picture called `name` (see `picture_names`); unknown names raise KeyError.

    Only layers are coloured: preprocessing previews and filters are shown in their own colours.
    `channel` picks one tile of a layer at full size (the folded units are tile 0), so an
    enlarged map costs its own pixels only, not the whole atlas.
    """
    for layer in maps.layers:
        if layer.name == name:
            if channel is None:
                return atlas_rgb(layer.levels, colormap)
            if not 0 <= channel < layer.tiles:
                raise KeyError(f"{name} has no channel {channel}")
            return apply_colormap(layer.levels[channel], colormap)
    if channel is not None:
        raise KeyError(f"{name} has no channels")
    for step in maps.preprocessing:
        if name == STEP_PICTURE.format(step.step):
            return step.preview
    if name == FILTERS_PICTURE and maps.filters is not None:
        return maps.filters
    raise KeyError(name)
