"""Worked answers about single layers: convolution (padding, stride, dilation, channels,
transposed), pooling, activations and losses."""

from __future__ import annotations

import math

import torch
from torch import nn

from app.lesson_answers.common import (
    Answer,
    expect,
    hwc,
    hwc_text,
    matrix_text,
    num,
    params_line,
    percent,
    shape_text,
    stack_fields,
    term,
)
from cnncore.activations import activation_curve
from cnncore.arithmetic import conv2d_shape, pool2d_shape, resolve_padding
from cnncore.inspect import summarize, summarize_model
from cnncore.losses import compute_loss
from cnncore.pooling import trace_pool2d
from cnncore.presets import preset_kernels, sample_inputs
from cnncore.trace import trace_conv2d
from cnncore.vanishing import vanishing_gradients

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
            shape_text(*hwc(shape)),
            hwc(shape),
            _size_lines(shape, size, kernel, stride, dilation),
        ),
        Answer("params", num(shape.params), shape.params, (params_line(shape, kernel, bias),)),
    ]
    if macs:
        h, w, o = hwc(shape)
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


def _size_lines(shape, size: int, kernel: int, stride: int, dilation: int) -> tuple[str, ...]:
    """The output size as the lessons teach it, out = ⌊(n + 2p − k) / s⌋ + 1, with the dilated
    span k' = d·(k − 1) + 1 in place of k (lesson "dilation"); the numbers are cnncore's (its
    padding resolved from 'same'/'valid', its output size), checked to agree."""
    pads, lines = shape.padding, []
    span = dilation * (kernel - 1) + 1
    k = "k"
    if dilation != 1:
        lines.append(f"k' = d·(k − 1) + 1 = {dilation}·({kernel} − 1) + 1 = {span}")
        k = "k'"
    for axis, before, after, out in (("H", pads.top, pads.bottom, shape.out_height),
                                     ("W", pads.left, pads.right, shape.out_width)):  # fmt: skip
        padded = f"2·{before}" if before == after else f"{before} + {after}"
        expect([(size + before + after - span) // stride + 1], [out], f"{axis}_out")
        lines.append(f"{axis}_out = ⌊(n + 2p − {k}) / s⌋ + 1 = "
                     f"⌊({size} + {padded} − {span}) / {stride}⌋ + 1 = {out}")  # fmt: skip
    return tuple(lines)


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
    expect(image.shape, (1, size, size), "the picture's shape")
    expect(image[0, 0].tolist(), columns, "the picture's rows")
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


def dilated_stack_field(dilations: list[int], kernel: int) -> tuple[Answer, ...]:
    """Receptive field of stacked k×k convolutions with the given dilations (stride 1)."""
    fields = stack_fields(dilations, kernel)
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
                params_line(dilated, kernel, True),
            ),
        ),
        Answer("params_large", num(large.params), large.params, (params_line(large, seen, True),)),
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
        Answer("params_conv", num(conv.params), conv.params, (params_line(conv, kernel, True),)),
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
    # The size as lesson "transposed" teaches it, out = (n − 1)·s − 2p + d·(k − 1) +
    # output_padding + 1, then cnncore's numbers; H×W×C like every other output size.
    taught = "(n − 1)·s − 2p + d·(k − 1) + output_padding + 1"
    lines = tuple(
        f"{axis}_out = {taught} = {shape.formula[name].split(' = ', 1)[1]}"
        for axis, name in (("H", "height"), ("W", "width"))
    )
    return (Answer("output_size", shape_text(*hwc(shape)), hwc(shape), lines),)


def autoencoder_code(model: str, input_shape: list[int]) -> tuple[Answer, ...]:
    """The narrowest feature map (the code) of the zoo's autoencoder and its parameters."""
    summary = summarize_model(model)
    expect(hwc_text(summary.input_shape).split("×"), map(str, input_shape), "the input")
    weighted = [layer for layer in summary.layers if layer.params]
    encoder = [layer for layer in weighted if layer.type == "Conv2d"]
    code = encoder[-1].output_shape
    path = " → ".join(
        hwc_text(s) for s in [summary.input_shape, *(layer.output_shape for layer in weighted)]
    )
    sizes = " + ".join(num(layer.params) for layer in weighted)
    return (
        Answer("code_size", hwc_text(code), (*code[1:], code[0]), (path,)),
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


# |largest logit| past which the written softmax subtracts it (e^80 ≈ 5.5·10³⁴; e^710 overflows)
SOFTMAX_SHIFT_FROM = 80.0


def softmax_lines(logits: list[float], probs: list[float]) -> tuple[str, str, str]:
    """Softmax written out with its numbers: each e^z_i, their sum Σ, each p_i = e^z_i / Σ (the
    lesson's worked answer and the /loss explorer show these same lines). `probs` is
    softmax(logits), computed by cnncore. Logits far from 0 (e^z past float range, or every e^z
    rounding to 0) are written shifted by their maximum m, which softmax does not change:
    e^(z_i − m) / Σ e^(z − m)."""
    top = max(logits, default=0.0)
    shift = top if abs(top) > SOFTMAX_SHIFT_FROM else 0.0
    exps = [math.exp(z - shift) for z in logits]
    total = sum(exps)
    powers = (
        [f"e^({num(z)} − {num(shift)}) = {num(e)}" for z, e in zip(logits, exps, strict=True)]
        if shift
        else [f"e^{num(z)} = {num(e)}" for z, e in zip(logits, exps, strict=True)]
    )
    return (
        " ".join(powers),
        f"Σ = {num(total)}",
        ", ".join(
            f"p{i} = {num(e)} / {num(total)} = {num(p, 3)}"
            for i, (e, p) in enumerate(zip(exps, probs, strict=True))
        ),
    )


def softmax_and_cross_entropy(logits: list[float], target: int) -> tuple[Answer, ...]:
    result = compute_loss("cross_entropy", target, logits=logits)
    probs = result.probs.tolist()
    grad = result.grad.tolist()
    return (
        Answer(
            "probabilities",
            "[" + ", ".join(num(p, 3) for p in probs) + "]",
            tuple(probs),
            softmax_lines(result.logits.tolist(), probs),
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
