"""Effective receptive fields: how strongly each input pixel moves one unit, on average.

Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive Field in Deep Convolutional
Neural Networks", NeurIPS 2016. The effective receptive field (ERF) of a unit is the magnitude of
its gradient with respect to the input, |∂unit/∂input| (summed over input channels), averaged over
random inputs or taken on one picture. It is roughly Gaussian and fills only part of the
theoretical field: in a stack of n convolutions its σ grows like √n (the gradient is an n-fold
convolution of the kernels, the central limit theorem at work) while the theoretical field grows
like n; doubling the dilation at every layer makes both grow exponentially.

The average over N inputs is one batched backward pass: the chosen unit is summed over the batch
and differentiated once. Batch norm must run in eval mode for this (in training mode its batch
statistics would mix the samples), so the model is evaluated in eval mode and its modes restored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import fx, nn

from cnncore.effective_rf_cost import check_samples, check_values, check_work
from cnncore.errors import CNNCoreError, shape_text
from cnncore.inspect import summarize_model
from cnncore.models import build_model, get_model_info, model_input_shape
from cnncore.pretrained import load_pretrained
from cnncore.receptive_field import (
    Box,
    FieldGraph,
    UnitReceptiveField,
    model_field_graph,
    trace_receptive_fields,
)

__all__ = [
    "ACTIVATIONS",
    "DepthSweep",
    "EffectiveField",
    "GaussianFit",
    "ModelEffectiveField",
    "StackConfig",
    "SweepPoint",
    "conv_stack",
    "depth_sweep",
    "effective_receptive_field",
    "gaussian_fit",
    "mass_share",
    "model_effective_field",
    "stack_effective_field",
    "stack_field_graph",
]

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
GROWTHS = ("constant", "doubling")
WEIGHTS = ("uniform", "random")
STACK_CHANNELS = 4
STACK_SIDE = 64  # a stack's input side when none is given (no model fixes one)
MASS_LEVEL = 0.95


@dataclass(frozen=True)
class GaussianFit:
    """Centre and spread of the gradient mass, per axis, in input pixels, and the marginals they
    are the moments of: the share of the mass in each input row and column (each sums to 1, or
    is all zeros when there is no mass)."""

    centre_y: float
    centre_x: float
    sigma_y: float
    sigma_x: float
    rows: tuple[float, ...]
    columns: tuple[float, ...]


@dataclass(frozen=True)
class EffectiveField:
    layer: str
    y: int
    x: int
    heatmap: torch.Tensor  # H×W mean |∂unit/∂input|, summed over channels, scaled to max 1
    fit: GaussianFit
    pixels_95: int  # fewest pixels holding 95% of the gradient mass
    share_95: float  # those pixels as a share of the theoretical field inside the image
    samples: int  # random inputs averaged (1 for a given image)
    input_shape: tuple[int, int, int]
    theoretical: UnitReceptiveField
    feature_map: torch.Tensor | None = None  # H'×W' layer output, mean over channels, for a
    # given image (None for random inputs or a flattened layer): the map whose unit was chosen


def gaussian_fit(heatmap: torch.Tensor) -> GaussianFit:
    """Moment fit of a 2-D Gaussian (its maximum-likelihood fit): mean and standard deviation of
    the row and column marginals of the normalised mass. All zeros → zero spread."""
    mass = heatmap.double()
    total = float(mass.sum())
    rows, columns = mass.sum(1), mass.sum(0)
    # the shares in double precision (no mass: all zeros, not a division by zero)
    shares = [tuple((m / max(total, 1e-300)).tolist()) for m in (rows, columns)]
    if total <= 0:
        return GaussianFit(0.0, 0.0, 0.0, 0.0, *shares)
    moments = []
    for marginal in (rows, columns):
        index = torch.arange(marginal.numel(), dtype=torch.float64)
        mean = float((marginal * index).sum()) / total
        variance = float((marginal * (index - mean) ** 2).sum()) / total
        moments.append((mean, math.sqrt(max(variance, 0.0))))
    (cy, sy), (cx, sx) = moments
    return GaussianFit(cy, cx, sy, sx, *shares)


def mass_share(
    heatmap: torch.Tensor, box: Box | None, level: float = MASS_LEVEL
) -> tuple[int, float]:
    """(pixels, share): the fewest pixels holding `level` of the mass, and their share of `box`
    (the theoretical field inside the image)."""
    values = heatmap.double().flatten().sort(descending=True).values
    total = float(values.sum())
    if total <= 0 or box is None:
        return 0, 0.0
    cumulative = values.cumsum(0) / total
    pixels = min(int((cumulative < level).sum()) + 1, values.numel())
    return pixels, pixels / box.area


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration, then every module's own mode back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


def _prefix(model: nn.Module, graph: fx.Graph, node_name: str) -> fx.GraphModule:
    """The graph up to one node, which becomes the output, run on `model`'s own modules (the
    model itself is not changed, nothing is copied)."""
    upto = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in graph.nodes:
        if node.op == "output":
            break
        env[node] = upto.node_copy(node, lambda n: env[n])
        if node.name == node_name:
            upto.output(env[node])
            break
    prefix = fx.GraphModule(model, upto)  # takes the modules the nodes name from `model`
    prefix.graph.eliminate_dead_code()
    prefix.recompile()
    return prefix


def _has_path(model: nn.Module, path: str) -> bool:
    owner: object = model
    for part in path.split("."):
        if not hasattr(owner, part):
            return False
        owner = getattr(owner, part)
    return True


def _fits(model: nn.Module, geometry: FieldGraph) -> bool:
    """`model` has exactly the layers `geometry` was traced from: the same leaf modules at the
    same paths, of the same classes, and every attribute the graph reads."""
    nodes = list(geometry.graph_module.graph.nodes)
    used = {str(n.target) for n in nodes if n.op == "call_module"}
    leaves = {
        name: type(module)
        for name, module in model.named_modules()
        if name and next(module.children(), None) is None
    }
    if set(leaves) != used:
        return False
    traced = geometry.graph_module
    return all(leaves[t] is type(traced.get_submodule(t)) for t in used) and all(
        _has_path(model, str(n.target)) for n in nodes if n.op == "get_attr"
    )


def _field_graph(
    model: nn.Module, input_shape: tuple[int, int, int], geometry: FieldGraph | None
) -> FieldGraph:
    """`geometry` (the same architecture traced once, e.g. on the meta device) when `model` has
    its very layers, else a fresh trace. Tracing is kept out of requests on purpose:
    `torch.fx.symbolic_trace` patches `nn.Module.__call__` for the whole process while it runs,
    so a trace in one thread breaks forward passes running in the others."""
    if (
        geometry is not None
        and geometry.input_shape == tuple(input_shape)
        and _fits(model, geometry)
    ):
        return geometry
    return trace_receptive_fields(model, input_shape)


def _unit_sum(output: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """The unit at (y, x), all channels, summed over the batch (a flattened output: all of it)."""
    return output[:, :, y, x].sum() if output.dim() == 4 else output.sum()


def effective_receptive_field(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    layer: str | None = None,
    y: int | None = None,
    x: int | None = None,
    *,
    samples: int = 16,
    seed: int = 0,
    image: torch.Tensor | None = None,
    geometry: FieldGraph | None = None,
) -> EffectiveField:
    """The ERF of unit (y, x) of `layer` (default: centre of the deepest feature map), averaged
    over `samples` standard-normal inputs drawn from `seed`, or on `image` (C×H×W) alone.
    `geometry`: the model's fields traced beforehand (used when the model has its layers)."""
    graph = _field_graph(model, input_shape, geometry)
    layer = layer or graph.default_layer()
    theoretical = graph.unit(layer, y, x)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if image is not None:
        if tuple(image.shape) != tuple(input_shape):
            raise CNNCoreError(
                f"the image is {tuple(image.shape)}, the input is {input_shape}",
                "image",
                code="image_shape_mismatch",
                ctx={"shape": shape_text(image.shape),
                     "expected_shape": shape_text(input_shape)},
            )  # fmt: skip
        inputs = image[None].to(device, torch.float32)
    else:
        check_samples(samples)
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(samples, *input_shape, generator=generator).to(device)
    inputs.requires_grad_(True)
    upto = _prefix(model, graph.graph_module.graph, graph.step(layer).node)
    with _evaluating(model):
        output = upto(inputs)
        # one backward for the whole batch: the samples do not interact in eval mode
        (grad,) = torch.autograd.grad(_unit_sum(output, theoretical.y, theoretical.x), inputs)
    feature_map = None
    if image is not None and output.dim() == 4:
        feature_map = output[0].detach().mean(0).cpu()
    heat = grad.abs().sum(1).mean(0).detach().cpu()
    pixels, share = mass_share(heat, theoretical.clipped_box)
    peak = float(heat.max())
    return EffectiveField(
        layer,
        theoretical.y,
        theoretical.x,
        heat / peak if peak > 0 else heat,
        gaussian_fit(heat),
        pixels,
        share,
        inputs.shape[0],
        tuple(input_shape),
        theoretical,
        feature_map,
    )


# --- stacks of convolutions and the depth sweep ------------------------------------------------


@dataclass(frozen=True)
class StackConfig:
    """`depth` k×k convolutions that keep the size ('same' padding d·(k−1)/2), each followed by
    `activation`. `growth="doubling"` multiplies the dilation by 2 at every layer. `weights`:
    "uniform" (every weight 1/(C·k²), no bias: Luo et al.'s uniform case, where the ERF is an
    n-fold box blur) or "random" (Kaiming-normal, zero bias)."""

    depth: int
    kernel: int = 3
    dilation: int = 1
    growth: str = "constant"  # constant | doubling
    activation: str = "none"  # none | relu | tanh | sigmoid
    weights: str = "uniform"  # uniform | random

    def __post_init__(self) -> None:
        for field in ("depth", "kernel", "dilation"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CNNCoreError(f"{field} must be a positive integer, got {value!r}", field,
                                   code="positive_integer")  # fmt: skip
        if self.kernel % 2 == 0:
            raise CNNCoreError(
                f"kernel must be odd so the unit stays centred, got {self.kernel}",
                "kernel",
                code="kernel_must_be_odd",
                ctx={"kernel": self.kernel},
            )
        _choice(self.growth, GROWTHS, "growth")
        _choice(self.activation, ACTIVATIONS, "activation")
        _choice(self.weights, WEIGHTS, "weights")

    def dilations(self) -> list[int]:
        return [
            self.dilation * 2**i if self.growth == "doubling" else self.dilation
            for i in range(self.depth)
        ]

    def check_fits(self, size: int) -> None:
        """One layer may reach at most across the image: d·(k − 1) ≤ size (a wider dilated kernel
        reads only padding beyond its centre tap, and its padded input grows without bound)."""
        reach = self.dilations()[-1] * (self.kernel - 1)
        if reach > size:
            field = "depth" if self.growth == "doubling" and self.depth > 1 else "dilation"
            raise CNNCoreError(
                f"the last layer's dilated kernel spans {reach + 1} pixels, wider "
                f"than the {size}-pixel input: use a smaller {field}",
                field,
                code="dilated_kernel_wider_than_input",
                ctx={"effective": reach + 1, "size": size, "kernel": self.kernel,
                     "dilation": self.dilations()[-1]},
            )  # fmt: skip

    def macs(self, height: int, width: int) -> int:
        """Multiply-accumulates of one input through the whole stack."""
        return self.depth * STACK_CHANNELS**2 * self.kernel**2 * height * width

    def backward_values(self, height: int, width: int, layer_passes: int, inputs: int) -> int:
        """Float values held at most for one backward pass (`cnncore.effective_rf_cost`):
        each of `layer_passes` layer passes keeps its input for the gradient, and its
        activation's output while the next layer runs; the `inputs` and their gradient."""
        modules = 1 if self.activation == "none" else 2
        return STACK_CHANNELS * height * width * (modules * layer_passes + 2 * inputs)


def _choice(value: str, options, field: str) -> str:
    if value not in options:
        raise CNNCoreError(f"{field} must be one of {', '.join(options)}, got {value!r}", field,
                           code="enum", ctx={"expected": list(options)})  # fmt: skip
    return value


def conv_stack(config: StackConfig, seed: int = 0) -> nn.Sequential:
    """The stack `config` describes, `STACK_CHANNELS` wide; random weights drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    k = config.kernel
    layers: list[nn.Module] = []
    for d in config.dilations():
        with torch.device("meta"):  # no draws from torch's global generator (cnncore.seeding)
            conv = nn.Conv2d(
                STACK_CHANNELS,
                STACK_CHANNELS,
                k,
                padding=d * (k - 1) // 2,
                dilation=d,
                bias=False,
            ).to_empty(device="cpu")
        with torch.no_grad():
            if config.weights == "uniform":
                conv.weight.fill_(1.0 / (STACK_CHANNELS * k * k))
            else:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
        layers.append(conv)
        if ACTIVATIONS[config.activation] is not None:
            layers.append(ACTIVATIONS[config.activation]())
    return nn.Sequential(*layers)


@lru_cache(maxsize=64)
def stack_field_graph(config: StackConfig, shape: tuple[int, int, int]) -> FieldGraph:
    """The fields of the stack `config` describes, traced once per geometry and input shape."""
    return trace_receptive_fields(conv_stack(config), shape)


def stack_effective_field(
    config: StackConfig,
    height: int | None = None,
    width: int | None = None,
    y: int | None = None,
    x: int | None = None,
    *,
    samples: int = 16,
    seed: int = 0,
    max_macs: int | None = None,
    max_values: int | None = None,
) -> EffectiveField:
    """ERF of a unit of the stack's last layer (default: the centre) on a `height`×`width`
    input (default: STACK_SIDE on each omitted side)."""
    height, width = height or STACK_SIDE, width or STACK_SIDE
    check_samples(samples)
    config.check_fits(min(height, width))
    check_work(config.macs(height, width) * samples, max_macs)
    check_values(config.backward_values(height, width, config.depth * samples, samples),
                 max_values)  # fmt: skip
    shape = (STACK_CHANNELS, height, width)
    return effective_receptive_field(
        conv_stack(config, seed),
        shape,
        None,
        y,
        x,
        samples=samples,
        seed=seed,
        geometry=stack_field_graph(config, shape),
    )


@dataclass(frozen=True)
class SweepPoint:
    depth: int
    theoretical_size: int  # r = 1 + Σ d_i·(k − 1): linear in depth (exponential when doubling)
    fit: GaussianFit
    pixels_95: int
    share_95: float
    clipped: bool  # the theoretical field runs past the image: σ is held back by the border


@dataclass(frozen=True)
class DepthSweep:
    points: tuple[SweepPoint, ...]
    erf_exponent: float  # slope of log σ against log depth (≈ 0.5 for a plain stack)
    theoretical_exponent: float  # slope of log r against log depth (→ 1)


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x; NaN with fewer than two points."""
    if len(xs) < 2:
        return float("nan")
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    spread = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / spread


def depth_sweep(
    config: StackConfig,
    size: int = 64,
    *,
    samples: int = 8,
    seed: int = 0,
    max_macs: int | None = None,
    max_values: int | None = None,
) -> DepthSweep:
    """ERF of the centre unit after 1, 2, ..., `config.depth` layers of one stack.

    All depths come from one forward and one backward pass: the batch holds one group of
    `samples` inputs per depth, the group for depth n leaves the stack after layer n (deeper
    layers only run the groups that still need them) and its centre unit joins the sum there.
    """
    check_samples(samples)
    config.check_fits(size)
    max_depth = config.depth
    # group n runs n layers: Σ n = N(N+1)/2 layer passes per sample
    layer_passes = max_depth * (max_depth + 1) // 2 * samples
    check_work(config.macs(size, size) // max_depth * layer_passes, max_macs)
    check_values(config.backward_values(size, size, layer_passes, max_depth * samples),
                 max_values)  # fmt: skip
    stack = conv_stack(config, seed)
    shape = (STACK_CHANNELS, size, size)
    graph = stack_field_graph(config, shape)
    per_layer = len(stack) // max_depth
    names = [str((n + 1) * per_layer - 1) for n in range(max_depth)]  # after each activation
    centre = size // 2
    generator = torch.Generator().manual_seed(seed)
    # groups ordered deepest first, so the samples still running are always a prefix
    inputs = torch.randn(max_depth * samples, *shape, generator=generator, requires_grad=True)
    total = torch.zeros(())
    with _evaluating(stack):
        out = inputs
        for index, module in enumerate(stack):
            depth = index // per_layer + 1
            out = module(out[: (max_depth - depth + 1) * samples])
            if (index + 1) % per_layer == 0:
                group = out[(max_depth - depth) * samples :]
                total = total + _unit_sum(group, centre, centre)
        (grad,) = torch.autograd.grad(total, inputs)
    heat = grad.abs().sum(1).view(max_depth, samples, size, size).mean(1).flip(0)
    points = []
    for depth, (name, depth_heat) in enumerate(zip(names, heat, strict=True), start=1):
        unit = graph.unit(name, centre, centre)
        pixels, share = mass_share(depth_heat, unit.clipped_box)
        points.append(
            SweepPoint(
                depth,
                unit.field.height.size,
                gaussian_fit(depth_heat),
                pixels,
                share,
                unit.padding_cells > 0,
            )
        )
    kept = [p for p in points if not p.clipped and p.fit.sigma_y > 0]
    sigmas = [(p.fit.sigma_y + p.fit.sigma_x) / 2 for p in kept]
    return DepthSweep(
        tuple(points),
        _slope([p.depth for p in kept], sigmas),
        _slope([p.depth for p in kept], [p.theoretical_size for p in kept]),
    )


# --- zoo models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEffectiveField:
    model: str
    weights: str  # initialisation (He-normal from the seed) | trained | state_dict
    field: EffectiveField


def _he_initialised(name: str, input_shape: tuple[int, int, int], seed: int) -> nn.Module:
    """The model with He (Kaiming) normal weights from a private generator, zero biases, batch
    norm at rest: reproducible from `seed` without touching torch's global generator."""
    model = build_model(
        name, device="meta", in_channels=input_shape[0], input_size=input_shape[1:]
    ).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
            elif any(True for _ in module.parameters(recurse=False)):
                raise CNNCoreError(f"cannot initialise a {type(module).__name__} layer", "model",
                                   code="layer_not_initialisable")  # fmt: skip
    return model


def model_effective_field(
    name: str,
    height: int | None = None,
    width: int | None = None,
    layer: str | None = None,
    y: int | None = None,
    x: int | None = None,
    *,
    samples: int = 16,
    seed: int = 0,
    weights: str = "initialisation",
    max_macs: int | None = None,
    weights_dir: Path | None = None,
) -> ModelEffectiveField:
    """ERF of a zoo model's unit over random inputs, with its initial weights drawn from `seed`
    or with the best trained weights `cnncore.pretrained.load_pretrained` finds (bundled, or
    ImageNet weights installed in `weights_dir`)."""
    info = get_model_info(name)
    shape = model_input_shape(name, None, height, width).as_tuple()
    _choice(weights, ("initialisation", "trained"), "weights")
    if weights == "trained":
        loaded = load_pretrained(name, directory=weights_dir)
        trained_shape = loaded.weights.input_shape
        if info.sized_by_input and shape != trained_shape:
            raise CNNCoreError(
                f"the trained {name} takes {trained_shape[1]}×{trained_shape[2]} "
                "inputs only (its classifier is sized for them)",
                "height",
                code="trained_input_size",
                ctx={"height": trained_shape[1], "width": trained_shape[2]},
            )
        model, source = loaded.model, loaded.weights.source
    else:
        model, source = None, "initialisation"
    check_samples(samples)
    check_work(summarize_model(name, *shape).total_macs * samples, max_macs)
    if model is None:
        model = _he_initialised(name, shape, seed)
    field = effective_receptive_field(
        model,
        shape,
        layer,
        y,
        x,
        samples=samples,
        seed=seed,
        geometry=model_field_graph(name, *shape),
    )
    return ModelEffectiveField(name, source, field)
