"""The lesson path as data: ordered lessons, the explorer each one opens (with its URL state), and
check-yourself questions whose answers cnncore computes when they are asked.

Texts live in the message catalogues (`static/i18n/<lang>/lessons.json`; titles in `common.json`
as `lesson.<key>`, like the explorers' names): `lesson.<key>.summary`, paragraphs
`lesson.<key>.p1` … and each question's text `lesson.<key>.q.<id>` with `{name}` placeholders
that the question's own numbers fill, so both languages state the very numbers the solver uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from app.lesson_answers import Answer, layers, matrix_text, networks, num
from app.lesson_answers.check import Check, choice, number
from app.particles import with_particles

__all__ = [
    "LESSONS",
    "Answer",
    "ExplorerLink",
    "Lesson",
    "Question",
    "fill",
    "lesson_by_slug",
    "question_by_ref",
]


@dataclass(frozen=True)
class ExplorerLink:
    """An explorer page opened in a given state (its URL query)."""

    path: str
    state: Mapping[str, str] = field(default_factory=dict)

    @property
    def query(self) -> str:
        return urlencode(dict(self.state))

    def url(self, **extra: str) -> str:
        query = urlencode({**self.state, **extra})
        return f"{self.path}?{query}" if query else self.path


@dataclass(frozen=True, eq=False)  # hashed by identity: answers are cached per question
class Question:
    """A question stated with `params` (which fill its text) and solved from the same params."""

    id: str
    params: Mapping[str, Any]
    solver: Callable[..., tuple[Answer, ...]]
    check: Check  # what the student types or picks, checked against the computed answer

    def answers(self) -> tuple[Answer, ...]:
        return _answers(self)

    def expected(self) -> float | int | str:
        """The number a student should type, or the id of the right option."""
        return self.check.expected(self.answers())

    def is_correct(self, given: str | float) -> bool:
        return self.check.is_correct(given, self.answers())


@cache
def _answers(question: Question) -> tuple[Answer, ...]:
    # Computed by cnncore on the first request that asks, then kept: the numbers never change.
    return question.solver(**question.params)


@dataclass(frozen=True)
class Lesson:
    slug: str  # URL segment: /lessons/<slug>
    explorer: ExplorerLink  # embedded in the lesson, pre-configured
    questions: tuple[Question, ...]
    more: tuple[ExplorerLink, ...] = ()  # further explorers worth opening

    @property
    def key(self) -> str:
        """The lesson's name in catalogue keys."""
        return self.slug.replace("-", "_")


def _q(id: str, solver: Callable[..., tuple[Answer, ...]], check: Check, **params: Any) -> Question:
    return Question(id, MappingProxyType(params), solver, check)


def _link(path: str, **state: Any) -> ExplorerLink:
    return ExplorerLink(path, MappingProxyType({k: str(v) for k, v in state.items()}))


def _conv_layer_q(
    id: str, check: Check, *, size: int, channels: int, filters: int, kernel: int, **layer: Any
) -> Question:
    """A question on one conv layer (square input): its output size and parameters."""
    return _q(
        id,
        layers.conv_layer,
        check,
        size=size,
        channels=channels,
        filters=filters,
        kernel=kernel,
        **layer,
    )


HEIGHT = number("output_size", 0, part="height")  # a square output: its side
PARAMS = number("params")


def _model_link(model: str, channels: int = 3, size: int = 224, **state: Any) -> ExplorerLink:
    """/architectures showing a zoo model on a square `size`×`size` input."""
    return _link("/architectures", model=model, channels=channels, height=size, width=size, **state)


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "convolution",
        _link(
            "/conv",
            input="digit",
            size=8,
            kernel=3,
            preset="vertical_edge",
            padding="valid",
            stride=1,
            dilation=1,
        ),
        (
            _q("output", layers.conv_output_and_macs, number("macs"), size=8, kernel=3),
            _q(
                "dot",
                layers.window_dot_product,
                number("value"),
                window=[[1, 2, 0], [0, 1, 1], [2, 0, 1]],
                kernel=[[1, 0, -1], [1, 0, -1], [1, 0, -1]],
            ),
        ),
    ),
    Lesson(
        "edge-filters",
        _link(
            "/conv",
            input="rgb_patch",
            channels=3,
            kernel=3,
            filters=2,
            preset="sobel_x,sobel_y",
            padding=1,
        ),
        (
            _q(
                "step_edge",
                layers.edge_response,
                number("output_row", 1, part="second"),
                sample="step_edge",
                kernel="vertical_edge",
                size=6,
                bright=3,
            ),
            _conv_layer_q("rgb_params", PARAMS, size=8, channels=3, filters=2, kernel=3, padding=1),
        ),
        more=(
            _link("/conv", input="step_edge", size=6, kernel=3, preset="vertical_edge"),
            _link("/features", mode="handcrafted"),
        ),
    ),
    Lesson(
        "padding-stride",
        _link("/conv", input="digit", size=7, kernel=3, padding=1, stride=2),
        (
            _conv_layer_q(
                "cs231n", PARAMS, size=32, channels=3, filters=10, kernel=5, stride=1, padding=2
            ),
            _conv_layer_q(
                "alexnet", HEIGHT, size=227, channels=3, filters=96, kernel=11, stride=4, padding=0
            ),
            _q(
                "same",
                layers.same_padding,
                number("padding_dilated", 0, part="each_side"),
                kernel=5,
                dilated_kernel=3,
                dilation=2,
            ),
        ),
    ),
    Lesson(
        "dilation",
        _link("/conv", input="digit", size=9, kernel=3, dilation=2, padding="valid"),
        (
            _conv_layer_q(
                "output", HEIGHT, size=9, channels=1, filters=1, kernel=3, dilation=2, bias=False
            ),
            _q(
                "stack",
                layers.dilated_stack_field,
                number("receptive_field"),
                dilations=[1, 2, 4],
                kernel=3,
            ),
            _q(
                "params",
                layers.dilated_vs_large,
                choice("params_dilated", "params_large", rule="smallest"),
                channels=64,
                kernel=3,
                dilation=2,
            ),
        ),
    ),
    Lesson(
        "channels-params",
        _link(
            "/conv",
            input="rgb_patch",
            channels=3,
            kernel=3,
            filters=3,
            preset="vertical_edge,horizontal_edge,laplacian",
            bias=1,
            padding=1,
        ),
        (
            _conv_layer_q("conv", PARAMS, size=32, channels=3, filters=16, kernel=3, padding=1),
            _q(
                "dense",
                layers.conv_vs_dense,
                number("params_dense"),
                size=32,
                channels=3,
                filters=16,
                kernel=3,
            ),
        ),
    ),
    Lesson(
        "transposed",
        _link(
            "/conv", input="square", size=4, kernel=3, transposed=1, stride=2, padding=1, outpad=1
        ),
        (
            _q(
                "upsample",
                layers.transposed_output,
                HEIGHT,
                size=4,
                kernel=3,
                stride=2,
                padding=1,
                output_padding=1,
            ),
            _q(
                "autoencoder",
                layers.autoencoder_code,
                PARAMS,
                model="autoencoder",
                input_shape=[28, 28, 1],
            ),
        ),
        more=(_model_link("autoencoder", channels=1, size=28),),
    ),
    Lesson(
        "pooling",
        _link("/pool", input="digit", size=8, kind="max", kernel=2, stride=2),
        (
            _q(
                "shape",
                layers.pool_shape,
                number("values_kept", percent=True),
                size=224,
                channels=64,
                kernel=2,
                stride=2,
            ),
            _q("overlap", layers.pool_shape, HEIGHT, size=55, channels=96, kernel=3, stride=2),
            _q(
                "values",
                layers.pooled_values,
                number("max_pool", 1, 1, part="bottom_right"),
                values=[[1, 3, 2, 1], [4, 6, 5, 0], [7, 2, 1, 8], [3, 0, 9, 4]],
                kernel=2,
            ),
        ),
    ),
    Lesson(
        "activations",
        _link("/activations", fn="sigmoid", deep="sigmoid", compare="relu", depth=10),
        (
            _q("slope", layers.sigmoid_derivative, number("max_slope", tolerance=0.01), depth=10),
            _q(
                "measured",
                layers.measured_vanishing,
                choice("ratio_sigmoid", "ratio_relu", rule="nearest_one"),
                depth=10,
                activations=["sigmoid", "relu"],
                init="kaiming",
                seed=0,
            ),
        ),
    ),
    Lesson(
        "softmax-loss",
        _link(
            "/loss",
            kind="cross_entropy",
            mode="logits",
            classes=3,
            logits="2,1,0.1",
            target=0,
            temperature=1,
        ),
        (
            _q(
                "softmax",
                layers.softmax_and_cross_entropy,
                number("loss", tolerance=0.01),
                logits=[2.0, 1.0, 0.1],
                target=0,
            ),
            _q(
                "focal",
                layers.focal_against_cross_entropy,
                choice("ce_over_focal_easy", "ce_over_focal_hard", rule="largest"),
                easy=0.9,
                hard=0.1,
                gamma=2.0,
            ),
        ),
        more=(_link("/loss", kind="focal", mode="probs", classes=2, probs="0.9,0.1", gamma=2),),
    ),
    Lesson(
        "classic-cnns",
        _model_link("lenet5", channels=1, size=32, num_classes=10),
        (
            _q("lenet", networks.model_params, PARAMS, model="lenet5"),
            _q(
                "vgg",
                networks.largest_layer_share,
                number("share", percent=True, tolerance=0.01),
                model="vgg16",
            ),
            _q(
                "macs",
                networks.macs_ratio,
                number("macs_ratio", tolerance=0.01),
                small="alexnet",
                large="vgg16",
            ),
        ),
        more=(
            _model_link("alexnet"),
            _model_link("vgg16"),
        ),
    ),
    Lesson(
        "modern-cnns",
        _model_link("googlenet", blocks=1),
        (
            _q(
                "bottleneck",
                networks.factorised_cost,
                number("cost_ratio", tolerance=0.02),
                name="bottleneck",
                input_shape=[28, 28, 192],
                out=32,
                kernel=5,
                reduce=16,
            ),
            _q(
                "residual",
                networks.residual_block_params,
                PARAMS,
                model="resnet18",
                block="layer1.0",
                channels=64,
            ),
            _q(
                "separable",
                networks.factorised_cost,
                number("cost_ratio", tolerance=0.02),
                name="depthwise_separable",
                input_shape=[14, 14, 512],
                out=512,
                kernel=3,
            ),
        ),
        more=(
            _model_link("resnet18"),
            _model_link("mobilenet_v1"),
            _model_link("mobilenet_v2"),
        ),
    ),
    Lesson(
        "receptive-field",
        _link("/receptive-field", model="vgg16", layer="features.28", erf=1),
        (
            _q(
                "stack",
                networks.stacked_small_kernels,
                choice("params_stack", "params_large", rule="smallest"),
                layers=3,
                kernel=3,
                channels=64,
            ),
            _q(
                "vgg",
                networks.model_layer_field,
                number("receptive_field"),
                model="vgg16",
                layer="features.28",
            ),
        ),
        more=(_model_link("vgg16"),),
    ),
    Lesson(
        "training",
        _link("/train", preset="batch_norm"),
        (
            _q(
                "batch_norm",
                networks.batch_norm_params,
                number("params_added"),
                model="lenet5",
                input_shape=[1, 32, 32],
                classes=10,
            ),
            _q(
                "schedule",
                networks.learning_rates,
                number("lr_step", tolerance=0.01),
                base=0.1,
                epochs=30,
                at=25,
                step_size=10,
                gamma=0.1,
            ),
        ),
        more=(_link("/activations", deep="relu", compare="sigmoid", depth=20, batch_norm=1),),
    ),
    Lesson(
        "transfer-learning",
        _link("/train", preset="transfer"),
        (
            _q(
                "head",
                networks.frozen_transfer,
                number("params_trainable"),
                model="resnet18",
                classes=10,
                train=[],
            ),
            _q(
                "last_stage",
                networks.frozen_transfer,
                number("params_trainable"),
                model="resnet18",
                classes=10,
                train=["layer4"],
            ),
        ),
        more=(_link("/features", model="tinyvgg"),),
    ),
)

_BY_SLUG = {lesson.slug: lesson for lesson in LESSONS}
_SLUG = re.compile(r"^[a-z0-9-]{1,40}$")
_BY_REF = {f"{lesson.slug}.{q.id}": (lesson, q) for lesson in LESSONS for q in lesson.questions}


def lesson_by_slug(slug: str) -> Lesson | None:
    """The lesson named `slug`, or None: looked up in the table, never used as a path."""
    if not _SLUG.fullmatch(slug):
        return None
    return _BY_SLUG.get(slug)


def question_by_ref(ref: str) -> tuple[Lesson, Question] | None:
    """The lesson and question named `<lesson slug>.<question id>` (e.g. `convolution.dot`)."""
    return _BY_REF.get(ref)


def display(value: Any, name: str = "") -> str:
    """A question's number as its text shows it (the same in every language); a `…shape`
    list reads 28×28×192."""
    if name.endswith("shape") and isinstance(value, list):
        return "×".join(num(v) for v in value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return matrix_text(value)
    if isinstance(value, list):
        return "[" + ", ".join(display(v) for v in value) + "]"
    if isinstance(value, (bool, str)):
        return str(value)
    return num(value)


def fill(text: str, params: Mapping[str, Any]) -> str:
    """`{name}` placeholders of a catalogue text filled from a question's params; a Korean
    particle marker after one (`{padding}(으)로`) agrees with the number (app.particles)."""
    return with_particles(text, {name: display(value, name) for name, value in params.items()})
