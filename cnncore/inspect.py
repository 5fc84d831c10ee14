"""Model summaries: per layer its output shape, parameters and multiply-accumulates (MACs).

One forward pass of a zero image (batch 1) with a pre/post forward hook on every leaf module
records each layer's input and output shapes in execution order, so branches are handled as they
run: a residual block's convs and its shortcut, an Inception module's four branches, each appears
once under its dotted module path (`layer1.0.conv1`, `inception3a.branch3.1.conv`). Hooks are
removed and each module's train/eval mode restored in a `finally`; the pass runs in eval mode
under `torch.no_grad()`, so nothing about the model changes. Built on `torch.device("meta")`
(`summarize_model`), the pass computes shapes only and allocates nothing.

What is counted (the convention of most published tables, e.g. torchvision's GFLOPS, which are
MACs):
- Conv2d: H'·W'·O·(C/g)·kh·kw, ConvTranspose2d: H·W·C·(O/g)·kh·kw, both from
  `cnncore.arithmetic.conv2d_shape`; Linear: in·out per row. Bias additions are not counted.
- Batch norm, pooling, activations, dropout, flatten and the residual additions / Inception
  concatenations between layers: 0 (they cost one operation per element, not per weight; batch
  norm folds into the preceding conv at inference).
Totals are sums over the rows; a layer that does not run in eval mode (GoogLeNet's auxiliary
classifiers) is listed with no shape and 0 MACs but its parameters, so total parameters always
equal `sum(p.numel() for p in model.parameters())`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import torch
from torch import nn

from cnncore.arithmetic import conv2d_shape
from cnncore.blocks import Block, model_blocks
from cnncore.errors import CNNCoreError, shape_text
from cnncore.models import build_model, model_input_shape
from cnncore.models.layers import module_pairs, spatial_output_size

__all__ = [
    "ConvCost",
    "CostComparison",
    "LayerSummary",
    "ModelSummary",
    "bottleneck_comparison",
    "curriculum_cost_comparisons",
    "layer_macs",
    "parameter_count",
    "separable_comparison",
    "summarize",
    "summarize_blocks",
    "summarize_model",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerSummary:
    name: str  # dotted module path
    type: str  # module class name
    input_shape: Shape | None  # without the batch dimension; None if it did not run
    output_shape: Shape | None
    params: int
    macs: int
    kernel_size: tuple[int, int] | None = None  # conv and pooling layers only
    stride: tuple[int, int] | None = None
    groups: int | None = None  # conv layers only: = input channels for a depthwise conv


@dataclass(frozen=True)
class ModelSummary:
    input_shape: Shape
    layers: tuple[LayerSummary, ...]
    total_params: int
    total_macs: int

    def layer(self, name: str) -> LayerSummary:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)


def layer_macs(module: nn.Module, input_shape: Shape, output_shape: Shape) -> int:
    """Multiply-accumulates of one call of `module` on one (unbatched) input."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        transposed = isinstance(module, nn.ConvTranspose2d)
        channels, height, width = input_shape[-3:]
        shape = conv2d_shape(
            channels,
            height,
            width,
            module.kernel_size,
            out_channels=module.out_channels,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            transposed=transposed,
            output_padding=module.output_padding if transposed else 0,
        )
        return shape.macs
    if isinstance(module, nn.Linear):
        rows = 1
        for size in output_shape[:-1]:
            rows *= size
        return rows * module.in_features * module.out_features
    return 0


def _geometry(module: nn.Module) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(kernel_size, stride) of a conv or pooling layer, as (height, width) pairs."""
    if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)):
        return None, None
    kernel, stride = module_pairs(module, "kernel_size", "stride")
    return kernel, stride


def _summarized_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves, plus any container that holds parameters of its own (so none is missed)."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if next(module.children(), None) is None
        or next(module.parameters(recurse=False), None) is not None
    ]


def _too_small(
    input_shape: Shape, name: str, module: nn.Module, layer_input: Shape, exc: Exception
) -> CNNCoreError:
    """Name the input axis (`height` or `width`) a failing forward pass could not shrink."""
    where = (
        f"at layer {name} ({type(module).__name__}) the feature map is "
        f"{shape_text(layer_input)}"
    )
    size = shape_text(input_shape)
    if len(layer_input) >= 3:
        try:
            spatial_output_size(module, layer_input[-2], layer_input[-1])
        except CNNCoreError as axis_error:
            field = axis_error.field
            return CNNCoreError(
                f"a {size} input is too small for this model: {where}, too "
                f"small for that layer ({axis_error}); use a larger {field}",
                field,
                code="input_too_small_for_model",
                ctx={"size": size, "layer": name, "shape": shape_text(layer_input)},
            )
    field = "height" if input_shape[-2] <= input_shape[-1] else "width"
    return CNNCoreError(
        f"a {size} input does not fit this model: {where} ({exc})",
        field,
        code="input_does_not_fit_model",
        ctx={"size": size, "layer": name, "shape": shape_text(layer_input)},
    )


def summarize(model: nn.Module, input_shape: Shape) -> ModelSummary:
    """Per-layer output shapes, parameters and MACs of `model` on one C×H×W input."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    modules = _summarized_modules(model)
    calls: list[tuple[str, nn.Module, Shape, Shape | None]] = []
    handles = []
    modes = {module: module.training for module in model.modules()}

    def recorder(name: str):
        def before(module: nn.Module, args: tuple) -> None:
            calls.append((name, module, tuple(args[0].shape[1:]), None))

        def after(module: nn.Module, args: tuple, output) -> None:
            if isinstance(output, (tuple, list)):  # a layer returning several tensors
                output = output[0]
            # A module's return closes its most recent open call (a module may run twice).
            for i in range(len(calls) - 1, -1, -1):
                if calls[i][1] is module and calls[i][3] is None:
                    calls[i] = (*calls[i][:3], tuple(output.shape[1:]))
                    break

        return before, after

    try:
        for name, module in modules:
            before, after = recorder(name)
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        model.eval()
        with torch.no_grad():
            try:
                model(torch.zeros(1, *input_shape, device=device))
            except CNNCoreError:
                raise
            except (RuntimeError, ValueError) as exc:
                # The innermost layer entered but not left is the one that refused its input.
                unfinished = [call for call in calls if call[3] is None]
                name, module, layer_input, _ = (
                    unfinished[-1] if unfinished else ("input", model, tuple(input_shape), None)
                )
                raise _too_small(tuple(input_shape), name, module, layer_input, exc) from exc
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training

    counted: set[int] = set()

    def new_params(module: nn.Module) -> int:
        fresh = [p for p in module.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in fresh)
        return sum(p.numel() for p in fresh)

    rows = [
        LayerSummary(
            name,
            type(module).__name__,
            shape_in,
            shape_out,
            new_params(module),
            layer_macs(module, shape_in, shape_out) if shape_out is not None else 0,
            *_geometry(module),
            groups=getattr(module, "groups", None),
        )
        for name, module, shape_in, shape_out in calls
    ]
    ran = {id(module) for _, module, _, _ in calls}
    rows += [
        LayerSummary(
            name,
            type(module).__name__,
            None,
            None,
            new_params(module),
            0,
            *_geometry(module),
            groups=getattr(module, "groups", None),
        )
        for name, module in modules
        if id(module) not in ran
    ]
    return ModelSummary(
        tuple(input_shape), tuple(rows), sum(r.params for r in rows), sum(r.macs for r in rows)
    )


def _zoo_model(
    name: str,
    channels: int | None,
    height: int | None,
    width: int | None,
    num_classes: int | None,
    **config,
) -> tuple[nn.Module, Shape]:
    """A zoo model on the meta device and its C×H×W input, omitted values at the defaults."""
    shape = model_input_shape(name, channels, height, width).as_tuple()
    model = build_model(
        name,
        device="meta",
        in_channels=shape[0],
        num_classes=num_classes,
        input_size=shape[1:],
        **config,
    )
    return model, shape


@lru_cache(maxsize=128)
def summarize_model(
    name: str,
    channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
    num_classes: int | None = None,
    **config,
) -> ModelSummary:
    """Summary of a zoo model built on the meta device (shapes only, no weights), cached.

    Unspecified channels, size and classes take the model's defaults; extra `config` reaches its
    factory (e.g. `aux_logits=True`, `branch3_kernel=5` for GoogLeNet).
    """
    model, shape = _zoo_model(name, channels, height, width, num_classes, **config)
    return summarize(model, shape)


@lru_cache(maxsize=128)
def summarize_blocks(
    name: str,
    channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
    num_classes: int | None = None,
    **config,
) -> tuple[Block, ...]:
    """The block structure (`cnncore.blocks.model_blocks`) of the model `summarize_model`
    summarises with the same arguments: containers, residual additions, Inception concatenations."""
    model, shape = _zoo_model(name, channels, height, width, num_classes, **config)
    return model_blocks(model, shape)


@lru_cache(maxsize=64)
def parameter_count(name: str, **config) -> int:
    """Parameters of a zoo model (at its defaults unless `config` says otherwise), cached."""
    return sum(p.numel() for p in build_model(name, device="meta", **config).parameters())


# --- cost comparisons the curriculum teaches ------------------------------------------------


@dataclass(frozen=True)
class ConvCost:
    """One way of computing the same output: its conv layers and their summed cost."""

    label: str
    layers: tuple[LayerSummary, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class CostComparison:
    """A standard k×k conv against a cheaper factorisation with the same input and output."""

    name: str  # "bottleneck" | "depthwise_separable"
    source: str  # where the cheaper layers come from, e.g. "googlenet inception3a.branch3"
    input_shape: Shape
    output_shape: Shape
    standard: ConvCost
    factorised: ConvCost
    macs_ratio: Fraction  # factorised / standard
    params_ratio: Fraction
    formula: str  # the ratio in symbols and with the numbers substituted


def _conv_rows(summary: ModelSummary, prefix: str) -> tuple[LayerSummary, ...]:
    rows = tuple(
        r for r in summary.layers if r.name.startswith(prefix + ".") and r.type == "Conv2d"
    )
    if not rows:
        raise CNNCoreError(f"no convolution under {prefix!r} in this summary", "block",
                           code="no_convolution_in_block")  # fmt: skip
    return rows


def _standard_conv(
    label: str, input_shape: Shape, out_channels: int, kernel: int, stride: int = 1
) -> ConvCost:
    """The k×k conv the factorised layers replace, sized by `cnncore.arithmetic`."""
    shape = conv2d_shape(
        *input_shape,
        kernel,
        out_channels=out_channels,
        stride=stride,
        padding=kernel // 2,
        bias=False,
    )
    row = LayerSummary(
        label,
        "Conv2d",
        input_shape,
        (shape.out_channels, shape.out_height, shape.out_width),
        shape.params,
        shape.macs,
        (kernel, kernel),
        (stride, stride),
    )
    return ConvCost(label, (row,), row.params, row.macs)


def _comparison(
    name: str, source: str, standard: ConvCost, rows: tuple[LayerSummary, ...], formula: str
) -> CostComparison:
    factorised = ConvCost(source, rows, sum(r.params for r in rows), sum(r.macs for r in rows))
    if rows[-1].output_shape != standard.layers[0].output_shape:
        raise CNNCoreError(f"{source} does not produce the standard conv's output shape", "block",
                           code="block_output_shape_mismatch")  # fmt: skip
    return CostComparison(
        name,
        source,
        rows[0].input_shape,
        standard.layers[0].output_shape,
        standard,
        factorised,
        Fraction(factorised.macs, standard.macs),
        Fraction(factorised.params, standard.params),
        formula,
    )


def bottleneck_comparison(summary: ModelSummary, branch: str, source: str) -> CostComparison:
    """A k×k conv C→O directly vs a 1×1 reduction C→r followed by the k×k conv r→O.

    Szegedy et al. 2015 §4: "1×1 convolutions are used to compute reductions before the expensive
    3×3 and 5×5 convolutions". MACs ratio = (H'W'·r·C + H'W'·O·r·k²) / (H'W'·O·C·k²)
    = r/(O·k²) + r/C.
    """
    rows = _conv_rows(summary, branch)
    (c, *_), (r, *_) = rows[0].input_shape, rows[-1].input_shape
    out = rows[-1].output_shape[0]
    kernel = rows[-1].kernel_size[0]
    standard = _standard_conv(f"direct {kernel}×{kernel}", rows[0].input_shape, out, kernel)
    ratio = Fraction(r, out * kernel * kernel) + Fraction(r, c)
    formula = f"r/(O·k²) + r/C = {r}/({out}·{kernel}²) + {r}/{c} = {float(ratio):.4f}"
    return _comparison("bottleneck", source, standard, rows, formula)


def separable_comparison(summary: ModelSummary, block: str, source: str) -> CostComparison:
    """A standard k×k conv C→N vs a k×k depthwise conv (groups=C) + a 1×1 pointwise conv C→N.

    Howard et al. 2017 §3.1: the cost ratio is (D_K²·M·D_F² + M·N·D_F²) / (D_K²·M·N·D_F²)
    = 1/N + 1/D_K².
    """
    rows = _conv_rows(summary, block)
    depthwise, pointwise = rows
    kernel, stride = depthwise.kernel_size[0], depthwise.stride[0]
    out = pointwise.output_shape[0]
    standard = _standard_conv(
        f"standard {kernel}×{kernel}", depthwise.input_shape, out, kernel, stride
    )
    ratio = Fraction(1, out) + Fraction(1, kernel * kernel)
    formula = f"1/N + 1/k² = 1/{out} + 1/{kernel}² = {float(ratio):.4f}"
    return _comparison("depthwise_separable", source, standard, rows, formula)


@lru_cache(maxsize=1)
def curriculum_cost_comparisons() -> tuple[CostComparison, CostComparison]:
    """The two comparisons the lessons use, read off the zoo's own layers at 3×224×224.

    Bottleneck: GoogLeNet's inception3a fifth-column branch as in the paper (1×1 192→16, then
    5×5 16→32 at 28×28; `branch3_kernel=5`, since torchvision's layout uses 3×3 there).
    Depthwise-separable: MobileNet v1's first 512→512 block at 14×14 (`features.7`).
    """
    googlenet = summarize_model("googlenet", branch3_kernel=5)
    mobilenet = summarize_model("mobilenet_v1")
    return (
        bottleneck_comparison(googlenet, "inception3a.branch3", "googlenet inception3a.branch3"),
        separable_comparison(mobilenet, "features.7", "mobilenet_v1 features.7"),
    )
