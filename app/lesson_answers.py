"""Worked answers of the lessons' check-yourself questions, computed by cnncore when asked.

Each solver takes the numbers the question states (the same numbers fill the question's text in
both languages) and returns `Answer`s: a label (a catalogue key under `lessons.answer.`), the
value as shown, the machine value (for the API and the tests) and the worked lines — the formula
with the numbers substituted, written from the very result the core returned. Nothing here
computes a size, a parameter count or a loss itself: it asks `cnncore` and writes it out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from cnncore.activations import activation_curve
from cnncore.arithmetic import conv2d_shape, pool2d_shape, resolve_padding
from cnncore.inspect import curriculum_cost_comparisons, summarize, summarize_model
from cnncore.losses import compute_loss
from cnncore.model_options import build_classifier
from cnncore.models import build_model
from cnncore.optim import lr_factor
from cnncore.pooling import trace_pool2d
from cnncore.presets import preset_kernels, sample_inputs
from cnncore.receptive_field import model_field_graph, receptive_fields
from cnncore.trace import trace_conv2d
from cnncore.transfer import freeze_layers, output_layer
from cnncore.vanishing import vanishing_gradients

Number = int | float


@dataclass(frozen=True)
class Answer:
    """One part of a worked answer."""

    label: str  # catalogue key under "lessons.answer."
    value: str  # as shown; the same in every language
    exact: Number | tuple  # the machine value behind `value`
    work: tuple[str, ...]  # the formula with the numbers substituted, line by line


# --- number formatting (identical in Korean and English) --------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def num(value: Number, digits: int = 4) -> str:
    """12,345 for integers; up to `digits` significant decimals; a×10⁻ⁿ for tiny values."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        text = f"{int(value):,}"
    elif value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    else:
        places = max(0, digits - 1 - math.floor(math.log10(abs(value)))) if value else 0
        text = f"{value:,.{places}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text.replace("-", "−")


def term(value: Number) -> str:
    """A factor in a product: negative numbers in brackets, as written by hand."""
    text = num(value)
    return f"({text})" if value < 0 else text


def shape_text(*sizes: int) -> str:
    return "×".join(str(s) for s in sizes)


def matrix_text(rows: list[list[Number]]) -> str:
    return "[" + ", ".join("[" + ", ".join(num(v) for v in row) + "]" for row in rows) + "]"


def percent(part: Number, whole: Number) -> str:
    return f"{num(100 * part / whole, 3)}%"


def _hwc(shape) -> tuple[int, int, int]:
    """(H, W, C) of a conv layer's output, as the questions state sizes."""
    return shape.out_height, shape.out_width, shape.out_channels


# --- convolution ------------------------------------------------------------------------------


def conv_layer(
    size: int,
    channels: int,
    filters: int,
    kernel: int,
    stride: int = 1,
    padding: int | str = 0,
    dilation: int = 1,
    bias: bool = True,
    macs: bool = False,
) -> tuple[Answer, ...]:
    """Output size and parameters (and MACs) of one conv layer on a square input."""
    shape = conv2d_shape(
        channels,
        size,
        size,
        kernel,
        out_channels=filters,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
    )
    answers = [
        Answer(
            "output_size",
            shape_text(*_hwc(shape)),
            _hwc(shape),
            (shape.formula["height"], shape.formula["width"]),
        ),
        Answer("params", num(shape.params), shape.params, (shape.formula["params"],)),
    ]
    if macs:
        h, w, o = _hwc(shape)
        answers.append(
            Answer(
                "macs",
                num(shape.macs),
                shape.macs,
                (
                    f"MACs = H_out·W_out·C_out·C_in·k·k = {h}·{w}·{o}·{channels}·{kernel}·{kernel}"
                    f" = {num(shape.macs)}",
                ),
            )
        )
    return tuple(answers)


def conv_output_and_macs(size: int, kernel: int) -> tuple[Answer, ...]:
    """One single-channel filter, stride 1, no padding: output size and multiply–adds."""
    output, _params, macs = conv_layer(size, 1, 1, kernel, bias=False, macs=True)
    return output, macs


def _products_line(window: torch.Tensor, kernel: torch.Tensor, total: float) -> str:
    pairs = [
        f"{term(a)}·{term(b)}"
        for a, b in zip(window.flatten().tolist(), kernel.flatten().tolist(), strict=True)
    ]
    return " + ".join(pairs) + f" = {num(total)}"


def _expect(actual, stated, what: str) -> None:
    """The numbers a question states must be the ones the core works with."""
    if tuple(actual) != tuple(stated):
        raise ValueError(f"the question states {what} {stated}, cnncore has {actual}")


def window_dot_product(window: list[list[int]], kernel: list[list[int]]) -> tuple[Answer, ...]:
    """One output cell: a k×k window times a kernel, summed (cnncore.trace)."""
    trace = trace_conv2d([window], [[kernel]])
    value = trace.output[0, 0, 0].item()
    line = _products_line(torch.tensor(window), torch.tensor(kernel), value)
    return (Answer("value", num(value), value, (line,)),)


def edge_response(sample: str, kernel: str, size: int, bright: int) -> tuple[Answer, ...]:
    """A named kernel over a sample input: the first output row and the window behind its peak.
    The question describes the sample as size×size with `bright` columns of 1 on the left."""
    image = {preset.name: preset.values for preset in sample_inputs()}[sample]
    taps = {preset.name: preset.values for preset in preset_kernels()}[kernel]
    columns = [1.0] * bright + [0.0] * (size - bright)
    _expect(image.shape, (1, size, size), "the picture's shape")
    _expect(image[0, 0].tolist(), columns, "the picture's rows")
    trace = trace_conv2d(image, taps[None, None])
    row = trace.output[0, 0].tolist()
    peak = max(range(len(row)), key=lambda x: abs(row[x]))
    k = taps.shape[0]
    window = image[0, :k, peak : peak + k]
    lines = (
        f"(y, x) = (0, {peak}): " + _products_line(window, taps, row[peak]),
        f"y = 0: [{', '.join(num(v) for v in row)}]",
    )
    return (Answer("output_row", "[" + ", ".join(num(v) for v in row) + "]", tuple(row), lines),)


def same_padding(kernel: int, dilated_kernel: int, dilation: int) -> tuple[Answer, ...]:
    """Zeros per side that 'same' padding adds at stride 1: a plain and a dilated kernel."""
    answers = []
    cases = (("padding_plain", kernel, 1), ("padding_dilated", dilated_kernel, dilation))
    for label, k, d in cases:
        pads = resolve_padding("same", (k, k), (1, 1), (d, d))
        work = (
            f"p_before + p_after = d·(k − 1) = {d}·({k} − 1) = {pads.height.total}",
            f"p_before = {pads.top}, p_after = {pads.bottom}",
        )
        answers.append(Answer(label, f"{pads.top} + {pads.bottom}", (pads.top, pads.bottom), work))
    return tuple(answers)


def _stack_fields(dilations: list[int], kernel: int, strides: list[int] | None = None):
    strides = strides or [1] * len(dilations)
    with torch.device("meta"):
        layers = [
            nn.Conv2d(1, 1, kernel, stride=s, dilation=d, padding=d * (kernel // 2))
            for d, s in zip(dilations, strides, strict=True)
        ]
    fields = receptive_fields(nn.Sequential(*layers), (1, 64, 64))
    return [fields[str(i)].height for i in range(len(layers))]


def dilated_stack_field(dilations: list[int], kernel: int) -> tuple[Answer, ...]:
    """Receptive field of stacked k×k convolutions with the given dilations (stride 1)."""
    fields = _stack_fields(dilations, kernel)
    sizes = [1] + [int(f.size) for f in fields]
    steps = [f"{d}·({kernel} − 1)" for d in dilations]
    work = (f"r = 1 + {' + '.join(steps)} = {sizes[-1]}", "r: " + " → ".join(str(s) for s in sizes))
    return (Answer("receptive_field", f"{sizes[-1]}×{sizes[-1]}", sizes[-1], work),)


def dilated_vs_large(channels: int, kernel: int, dilation: int) -> tuple[Answer, ...]:
    """Parameters of a dilated k×k conv against the plain kernel that sees as far."""
    seen = dilation * (kernel - 1) + 1
    dilated = conv2d_shape(
        channels, 32, 32, kernel, out_channels=channels, dilation=dilation, padding="same"
    )
    large = conv2d_shape(channels, 32, 32, seen, out_channels=channels, padding="same")
    return (
        Answer(
            "params_dilated",
            num(dilated.params),
            dilated.params,
            (
                f"k' = d·(k − 1) + 1 = {dilation}·({kernel} − 1) + 1 = {seen}",
                dilated.formula["params"],
            ),
        ),
        Answer("params_large", num(large.params), large.params, (large.formula["params"],)),
    )


def conv_vs_dense(size: int, channels: int, filters: int, kernel: int) -> tuple[Answer, ...]:
    """A 'same' conv layer against a fully connected layer with the same input and output."""
    conv = conv2d_shape(channels, size, size, kernel, out_channels=filters, padding="same")
    inputs, outputs = channels * size * size, conv.out_channels * conv.out_height * conv.out_width
    with torch.device("meta"):
        dense = nn.Sequential(nn.Flatten(), nn.Linear(inputs, outputs))
    params = summarize(dense, (channels, size, size)).total_params
    ratio = params / conv.params
    return (
        Answer("params_conv", num(conv.params), conv.params, (conv.formula["params"],)),
        Answer(
            "params_dense",
            num(params),
            params,
            (
                f"params = in·out + out = {num(inputs)}·{num(outputs)} + {num(outputs)}"
                f" = {num(params)}",
            ),
        ),
        Answer(
            "dense_over_conv",
            f"{num(round(ratio))}×",
            ratio,
            (f"{num(params)} / {num(conv.params)} = {num(ratio, 6)}",),
        ),
    )


def transposed_output(
    size: int, kernel: int, stride: int, padding: int, output_padding: int
) -> tuple[Answer, ...]:
    shape = conv2d_shape(
        1,
        size,
        size,
        kernel,
        stride=stride,
        padding=padding,
        transposed=True,
        output_padding=output_padding,
    )
    return (
        Answer(
            "output_size",
            shape_text(shape.out_height, shape.out_width),
            (shape.out_height, shape.out_width),
            (shape.formula["height"], shape.formula["width"]),
        ),
    )


def _hwc_text(shape: tuple[int, ...]) -> str:
    channels, *spatial = shape
    return shape_text(*spatial, channels)


def autoencoder_code(model: str, input_shape: list[int]) -> tuple[Answer, ...]:
    """The narrowest feature map (the code) of the zoo's autoencoder and its parameters."""
    summary = summarize_model(model)
    _expect(_hwc_text(summary.input_shape).split("×"), map(str, input_shape), "the input")
    weighted = [layer for layer in summary.layers if layer.params]
    encoder = [layer for layer in weighted if layer.type == "Conv2d"]
    code = encoder[-1].output_shape
    path = " → ".join(
        _hwc_text(s) for s in [summary.input_shape, *(layer.output_shape for layer in weighted)]
    )
    sizes = " + ".join(num(layer.params) for layer in weighted)
    return (
        Answer("code_size", _hwc_text(code), (*code[1:], code[0]), (path,)),
        Answer(
            "params",
            num(summary.total_params),
            summary.total_params,
            (f"{sizes} = {num(summary.total_params)}",),
        ),
    )


# --- pooling ----------------------------------------------------------------------------------


def pool_shape(size: int, channels: int, kernel: int, stride: int) -> tuple[Answer, ...]:
    """Output of a pooling layer, and how many numbers it keeps."""
    height, width = pool2d_shape(size, size, kernel, stride)
    before, after = size * size * channels, height * width * channels
    return (
        Answer(
            "output_size",
            shape_text(height, width, channels),
            (height, width, channels),
            (f"H_out = ⌊({size} − {kernel}) / {stride}⌋ + 1 = {height}",),
        ),
        Answer(
            "values_kept",
            percent(after, before),
            after / before,
            (
                f"{size}·{size}·{channels} = {num(before)} → "
                f"{height}·{width}·{channels} = {num(after)}",
            ),
        ),
    )


def pooled_values(values: list[list[int]], kernel: int) -> tuple[Answer, ...]:
    """Max and average pooling of a small map, window by window (cnncore.pooling)."""
    answers = []
    for kind, label in (("max", "max_pool"), ("avg", "avg_pool")):
        trace = trace_pool2d([values], kind, kernel)
        output = trace.output[0].tolist()
        work = []
        for step in trace.steps():
            cells = ", ".join(num(v) for row in step.values for v in row)
            if kind == "max":
                work.append(f"max({cells}) = {num(step.value)}")
            else:
                work.append(
                    f"({cells.replace(', ', ' + ')}) / {num(step.divisor)} = {num(step.value)}"
                )
        answers.append(Answer(label, matrix_text(output), tuple(map(tuple, output)), tuple(work)))
    return tuple(answers)


# --- activations and losses -------------------------------------------------------------------


def sigmoid_derivative(depth: int) -> tuple[Answer, ...]:
    """The sigmoid's largest slope (autograd on a sampled curve) and that slope to the depth."""
    curve = activation_curve("sigmoid", -6.0, 6.0, 241)
    at = int(torch.argmax(curve.dy))
    slope, y = curve.dy[at].item(), curve.y[at].item()
    x = round(curve.x[at].item(), 6)  # the sample at 0 carries linspace's rounding error
    bound = slope**depth
    return (
        Answer(
            "max_slope",
            num(slope),
            slope,
            (f"σ'(x) = σ(x)·(1 − σ(x)); x = {num(x)}: {num(y)}·(1 − {num(y)}) = {num(slope)}",),
        ),
        Answer("chain_bound", num(bound, 3), bound, (f"{num(slope)}^{depth} = {num(bound, 3)}",)),
    )


def measured_vanishing(
    depth: int, activations: list[str], init: str, seed: int
) -> tuple[Answer, ...]:
    """First-layer over last-hidden-layer gradient norm in cnncore's vanishing experiment."""
    answers = []
    for activation in activations:
        report = vanishing_gradients(activation, depth, init=init, seed=seed)
        first, last = report.layers[0], report.layers[depth - 1]
        ratio = first.grad_norm / last.grad_norm
        answers.append(
            Answer(
                f"ratio_{activation}",
                num(ratio, 3),
                ratio,
                (
                    f"‖∂L/∂W‖ {first.name} = {num(first.grad_norm, 3)}, "
                    f"{last.name} = {num(last.grad_norm, 3)}",
                    f"{num(first.grad_norm, 3)} / {num(last.grad_norm, 3)} = {num(ratio, 3)}",
                ),
            )
        )
    return tuple(answers)


def softmax_and_cross_entropy(logits: list[float], target: int) -> tuple[Answer, ...]:
    result = compute_loss("cross_entropy", target, logits=logits)
    exps = result.logits.exp().tolist()
    total = sum(exps)
    probs = result.probs.tolist()
    grad = result.grad.tolist()
    return (
        Answer(
            "probabilities",
            "[" + ", ".join(num(p, 3) for p in probs) + "]",
            tuple(probs),
            (
                " ".join(f"e^{num(z)} = {num(e)}" for z, e in zip(logits, exps, strict=True)),
                f"Σ = {num(total)}",
                ", ".join(
                    f"p{i} = {num(e)} / {num(total)} = {num(p, 3)}"
                    for i, (e, p) in enumerate(zip(exps, probs, strict=True))
                ),
            ),
        ),
        Answer(
            "loss",
            num(result.loss, 3),
            result.loss,
            (f"L = −ln p{target} = −ln {num(probs[target], 4)} = {num(result.loss, 3)}",),
        ),
        Answer(
            "gradient",
            "[" + ", ".join(num(g, 3) for g in grad) + "]",
            tuple(grad),
            (
                "∂L/∂z = p − y = ["
                + ", ".join(f"{num(p, 3)} − {int(i == target)}" for i, p in enumerate(probs))
                + "]",
            ),
        ),
    )


def focal_against_cross_entropy(easy: float, hard: float, gamma: float) -> tuple[Answer, ...]:
    """Cross-entropy over focal loss for an easy and a hard two-class example (p_t given)."""
    answers = []
    for label, p_t in (("ce_over_focal_easy", easy), ("ce_over_focal_hard", hard)):
        focal = compute_loss("focal", 0, probs=[p_t, 1 - p_t], gamma=gamma)
        now = focal.comparison[0]
        answers.append(
            Answer(
                label,
                f"{num(now.ratio, 3)}×",
                now.ratio,
                (
                    f"CE = −ln {num(p_t)} = {num(now.cross_entropy, 3)}",
                    f"FL = (1 − {num(p_t)})^{num(gamma)}·{num(now.cross_entropy, 3)}"
                    f" = {num(now.focal, 3)}",
                    f"CE / FL = {num(now.ratio, 3)}",
                ),
            )
        )
    return tuple(answers)


# --- architectures ----------------------------------------------------------------------------


def model_params(model: str) -> tuple[Answer, ...]:
    """Total parameters of a zoo model, layer by layer."""
    summary = summarize_model(model)
    weighted = [layer for layer in summary.layers if layer.params]
    lines = tuple(f"{layer.name} ({layer.type}): {num(layer.params)}" for layer in weighted)
    total = " + ".join(num(layer.params) for layer in weighted)
    return (
        Answer(
            "params",
            num(summary.total_params),
            summary.total_params,
            (*lines, f"{total} = {num(summary.total_params)}"),
        ),
    )


def largest_layer_share(model: str) -> tuple[Answer, ...]:
    """The layer holding the most parameters, and its share of the model's."""
    summary = summarize_model(model)
    layer = max(summary.layers, key=lambda row: row.params)
    (inputs,), (outputs,) = layer.input_shape, layer.output_shape
    share = layer.params / summary.total_params
    counts = Counter(row.type for row in summary.layers if row.params)
    kinds = " + ".join(f"{n} {kind}" for kind, n in counts.items())
    return (
        Answer(
            "params",
            num(summary.total_params),
            summary.total_params,
            (f"Σ ({kinds}) = {num(summary.total_params)}",),
        ),
        Answer(
            "largest_layer",
            f"{layer.name}: {num(layer.params)}",
            layer.params,
            (
                f"{layer.name} ({layer.type}): {num(inputs)}·{num(outputs)} + {num(outputs)}"
                f" = {num(layer.params)}",
            ),
        ),
        Answer(
            "share",
            percent(layer.params, summary.total_params),
            share,
            (
                f"{num(layer.params)} / {num(summary.total_params)} = "
                f"{percent(layer.params, summary.total_params)}",
            ),
        ),
    )


def macs_ratio(small: str, large: str) -> tuple[Answer, ...]:
    a, b = summarize_model(small), summarize_model(large)
    ratio = b.total_macs / a.total_macs
    return (
        Answer(
            "macs_ratio",
            f"{num(ratio, 3)}×",
            ratio,
            (
                f"{large}: {num(b.total_macs)} MACs, {small}: {num(a.total_macs)} MACs",
                f"{num(b.total_macs)} / {num(a.total_macs)} = {num(ratio, 3)}",
            ),
        ),
    )


def _cost_lines(cost, standard: bool = False) -> tuple[str, ...]:
    """One line per conv: the factorised ones by their dotted name, the standard one (which is
    no layer of the model) by its type and channels."""
    lines = []
    for row in cost.layers:
        kernel = shape_text(*row.kernel_size)
        name = (
            f"{row.type} {kernel}, {row.input_shape[0]} → {row.output_shape[0]}"
            if standard
            else f"{row.name} ({kernel})"
        )
        lines.append(f"{name}: {num(row.macs)} MACs")
    return tuple(lines)


def factorised_cost(
    name: str, input_shape: list[int], out: int, kernel: int, reduce: int | None = None
) -> tuple[Answer, ...]:
    """A standard conv against its 1×1-bottleneck or depthwise-separable replacement; the
    question states the input (H, W, C), output channels, kernel and bottleneck width."""
    comparison = {c.name: c for c in curriculum_cost_comparisons()}[name]
    standard, factorised = comparison.standard, comparison.factorised
    channels, height, width = comparison.input_shape
    _expect((height, width, channels), input_shape, "the input")
    _expect(
        (comparison.output_shape[0], *standard.layers[0].kernel_size),
        (out, kernel, kernel),
        "the output channels and kernel",
    )
    if reduce is not None:
        _expect((factorised.layers[0].output_shape[0],), (reduce,), "the bottleneck width")
    ratio = float(comparison.macs_ratio)
    return (
        Answer("macs_standard", num(standard.macs), standard.macs, _cost_lines(standard, True)),
        Answer(
            "macs_factorised",
            num(factorised.macs),
            factorised.macs,
            (
                *_cost_lines(factorised),
                " + ".join(num(r.macs) for r in factorised.layers) + f" = {num(factorised.macs)}",
            ),
        ),
        Answer(
            "cost_ratio",
            num(ratio, 3),
            ratio,
            (
                f"{num(factorised.macs)} / {num(standard.macs)} = {num(ratio, 4)}",
                comparison.formula,
            ),
        ),
    )


def residual_block_params(model: str, block: str, channels: int) -> tuple[Answer, ...]:
    """Parameters of one residual block: its convolutions, batch norms and shortcut."""
    rows = [r for r in summarize_model(model).layers if r.name.startswith(block + ".")]
    _expect({r.output_shape[0] for r in rows}, {channels}, "the block's channels")
    lines = []
    for row in rows:
        if row.type == "Conv2d":
            k = shape_text(*row.kernel_size)
            lines.append(
                f"{row.name}: {k}·{row.input_shape[0]}·{row.output_shape[0]} = {num(row.params)}"
            )
        elif row.params:
            lines.append(f"{row.name} ({row.type}): 2·{row.output_shape[0]} = {num(row.params)}")
        elif row.name.endswith("downsample"):
            lines.append(f"{row.name} ({row.type}): 0")
    total = sum(row.params for row in rows)
    shortcut = [row for row in rows if row.name.startswith(f"{block}.downsample")]
    shortcut_params = sum(row.params for row in shortcut)
    return (
        Answer("params", num(total), total, (*lines, f"Σ = {num(total)}")),
        Answer(
            "params_shortcut",
            num(shortcut_params),
            shortcut_params,
            tuple(f"{row.name} ({row.type}): {num(row.params)}" for row in shortcut),
        ),
    )


# --- receptive fields -------------------------------------------------------------------------


def stacked_small_kernels(layers: int, kernel: int, channels: int) -> tuple[Answer, ...]:
    """n stacked k×k convs: their receptive field, and their weights against one big kernel."""
    fields = _stack_fields([1] * layers, kernel)
    size = int(fields[-1].size)
    small = conv2d_shape(
        channels, 32, 32, kernel, out_channels=channels, padding="same", bias=False
    )
    large = conv2d_shape(channels, 32, 32, size, out_channels=channels, padding="same", bias=False)
    sizes = " → ".join(["1", *(str(int(f.size)) for f in fields)])
    return (
        Answer("receptive_field", f"{size}×{size}", size, (f"r: {sizes}",)),
        Answer(
            "params_stack",
            num(layers * small.params),
            layers * small.params,
            (
                small.formula["params"],
                f"{layers}·{num(small.params)} = {num(layers * small.params)}",
            ),
        ),
        Answer("params_large", num(large.params), large.params, (large.formula["params"],)),
    )


def model_layer_field(model: str, layer: str) -> tuple[Answer, ...]:
    """Theoretical receptive field of a zoo model's layer, grown layer by layer."""
    fields = model_field_graph(model).fields
    names = list(fields)
    path = [
        fields[name]
        for name in names[: names.index(layer) + 1]
        if fields[name].operation in ("Conv2d", "MaxPool2d")
    ]
    target = fields[layer]
    size, jump = int(target.height.size), int(target.height.jump)
    return (
        Answer(
            "receptive_field",
            f"{size}×{size}",
            size,
            ("r: 1 → " + " → ".join(str(int(f.height.size)) for f in path),),
        ),
        Answer(
            "jump",
            str(jump),
            jump,
            ("j: 1 → " + " → ".join(str(int(f.height.jump)) for f in path),),
        ),
    )


# --- training and transfer --------------------------------------------------------------------


def batch_norm_params(model: str, input_shape: list[int], classes: int) -> tuple[Answer, ...]:
    """Learnable parameters cnncore's batch-norm switch adds to a zoo classifier."""
    with torch.device("meta"):
        plain = build_classifier(model, tuple(input_shape), classes)
        normed = build_classifier(model, tuple(input_shape), classes, batch_norm=True)
    added = sum(p.numel() for p in normed.parameters()) - sum(p.numel() for p in plain.parameters())
    norms = [m for m in normed.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    lines = [f"{type(m).__name__}({m.num_features}): γ, β = 2·{m.num_features}" for m in norms]
    steps = " + ".join(f"2·{m.num_features}" for m in norms)
    return (Answer("params_added", num(added), added, (*lines, f"{steps} = {num(added)}")),)


def learning_rates(
    base: float, epochs: int, at: int, step_size: int, gamma: float
) -> tuple[Answer, ...]:
    step = lr_factor("step", at, 1, epochs, step_size, gamma) * base
    cosine_at = epochs // 2
    cosine = lr_factor("cosine", cosine_at, 1, epochs, step_size, gamma) * base
    return (
        Answer(
            "lr_step",
            num(step, 3),
            step,
            (
                f"{num(base)}·{num(gamma)}^⌊{at}/{step_size}⌋ = {num(base)}·{num(gamma)}"
                f"^{at // step_size} = {num(step, 3)}",
            ),
        ),
        Answer(
            "lr_cosine",
            num(cosine, 3),
            cosine,
            (f"{num(base)}·½·(1 + cos(π·{cosine_at}/{epochs})) = {num(cosine, 3)}",),
        ),
    )


def frozen_transfer(model: str, classes: int, train: list[str]) -> tuple[Answer, ...]:
    """Trainable parameters when a zoo model keeps only `train` (and its new head) learning."""
    with torch.device("meta"):
        net = build_model(model, device="meta", num_classes=classes)
    head = output_layer(net)
    learning = {head.split(".")[0], *train}
    frozen = [
        name
        for name, child in net.named_children()
        if name not in learning and any(True for _ in child.parameters())
    ]
    freeze_layers(net, frozen)
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    per_part = [
        (name, sum(p.numel() for p in net.get_submodule(name).parameters()))
        for name in (*train, head)
    ]
    lines = [f"{name}: {num(count)}" for name, count in per_part]
    if len(per_part) > 1:
        lines.append(" + ".join(num(c) for _, c in per_part) + f" = {num(trainable)}")
    return (
        Answer("params_trainable", num(trainable), trainable, tuple(lines)),
        Answer(
            "share",
            percent(trainable, total),
            trainable / total,
            (f"{num(trainable)} / {num(total)} = {percent(trainable, total)}",),
        ),
    )
