"""Worked answers about whole networks: the zoo's architectures and their costs, receptive
fields, training switches and transfer learning."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from app.lesson_answers.common import (
    Answer,
    expect,
    num,
    params_line,
    percent,
    shape_text,
    stack_fields,
)
from cnncore.arithmetic import conv2d_shape
from cnncore.inspect import curriculum_cost_comparisons, summarize_model
from cnncore.model_options import build_classifier
from cnncore.models import build_model
from cnncore.optim import lr_factor
from cnncore.receptive_field import model_field_graph
from cnncore.transfer import freeze_layers, output_layer

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
    expect((height, width, channels), input_shape, "the input")
    expect(
        (comparison.output_shape[0], *standard.layers[0].kernel_size),
        (out, kernel, kernel),
        "the output channels and kernel",
    )
    if reduce is not None:
        expect((factorised.layers[0].output_shape[0],), (reduce,), "the bottleneck width")
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
    expect({r.output_shape[0] for r in rows}, {channels}, "the block's channels")
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
    fields = stack_fields([1] * layers, kernel)
    size = int(fields[-1].size)
    small = conv2d_shape(
        channels, 32, 32, kernel, out_channels=channels, padding="same", bias=False
    )
    large = conv2d_shape(channels, 32, 32, size, out_channels=channels, padding="same", bias=False)
    sizes = " → ".join(["1", *(str(int(f.size)) for f in fields)])
    # lesson "receptive-field": each layer widens the field by (k − 1)·j
    jumps_in = [1, *(int(f.jump) for f in fields[:-1])]
    growth = " + ".join(f"({kernel} − 1)·{j}" for j in jumps_in)
    return (
        Answer(
            "receptive_field", f"{size}×{size}", size, (f"r = 1 + {growth} = {size}", f"r: {sizes}")
        ),
        Answer(
            "params_stack",
            num(layers * small.params),
            layers * small.params,
            (
                params_line(small, kernel, False),
                f"{layers}·{num(small.params)} = {num(layers * small.params)}",
            ),
        ),
        Answer(
            "params_large", num(large.params), large.params, (params_line(large, size, False),)
        ),  # fmt: skip
    )


# The rule lesson "receptive-field" teaches (Araujo et al., Distill 2019), layer by layer.
FIELD_RULE = "r_out = r_in + (k − 1)·j_in, j_out = j_in·s"


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
            (
                FIELD_RULE,
                "r: 1 → " + " → ".join(str(int(f.height.size)) for f in path),
            ),
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
