"""Bodies of the receptive-field API: a unit's box, every layer's field, effective fields, sweeps.

Per-axis numbers travel as `{"height": ..., "width": ...}` pairs; boxes as inclusive input rows
`y0..y1` and columns `x0..x1` (they may run past the image: that part is padding). The ERF
heatmap travels as a grey PNG data URL (level = round(255 · value / max)), as feature maps do.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from app.schemas.common import finite_or_none
from app.schemas.models import PARSE_CEILING, PairOut, SummaryQuery
from app.schemas.runs import RUN_ID_PATTERN
from app.settings import Settings
from cnncore.effective_rf import DepthSweep, EffectiveField, GaussianFit, StackConfig
from cnncore.effective_rf_picture import PictureEffectiveField
from cnncore.errors import CNNCoreError
from cnncore.features import LayerLevels
from cnncore.images import png_base64, unit_pixels
from cnncore.receptive_field import Box, ReceptiveField, UnitReceptiveField

__all__ = [
    "EffectiveIn",
    "EffectiveOut",
    "EffectivePictureForm",
    "LayerFieldOut",
    "LayerFieldsOut",
    "SweepIn",
    "SweepOut",
    "UnitFieldOut",
    "UnitQuery",
    "png_data_url",
]


class UnitQuery(SummaryQuery):
    """The input (as a summary's) and the unit; omitted: deepest feature map, its centre."""

    layer: str | None = Field(
        None, min_length=1, max_length=200, description="dotted layer name, as in the summary"
    )
    y: int | None = Field(None, ge=0, le=PARSE_CEILING, description="unit row")
    x: int | None = Field(None, ge=0, le=PARSE_CEILING, description="unit column")


class SizeOut(BaseModel):
    height: int
    width: int


class BoxOut(BaseModel):
    y0: int
    y1: int
    x0: int
    x1: int

    @classmethod
    def of(cls, box: Box | None) -> BoxOut | None:
        return None if box is None else cls(y0=box.y0, y1=box.y1, x0=box.x0, x1=box.x1)


class UnitOut(BaseModel):
    y: int
    x: int


class InputShapeOut(BaseModel):
    channels: int
    height: int
    width: int


class LayerFieldOut(BaseModel):
    """One layer's field (Araujo et al., Distill 2019): r, jump, start, effective padding."""

    name: str
    operation: str
    output_size: SizeOut | None = Field(description="null once the map is flattened")
    size: PairOut = Field(description="r: input pixels one unit sees, padding included")
    jump: PairOut = Field(description="input pixels between neighbouring units")
    start: PairOut = Field(description="centre of unit 0's field, in input pixels")
    effective_padding: PairOut = Field(description="(r − 1)/2 − start")
    aligned: bool = Field(description="all paths centre their fields on the same pixel")
    uniform: bool = Field(description="every unit follows start + index·jump ± (r − 1)/2")
    is_global: bool = Field(description="pooled or flattened: every unit sees the whole input")

    @classmethod
    def of(cls, field: ReceptiveField) -> LayerFieldOut:
        size = field.output_size
        return cls(
            name=field.layer,
            operation=field.operation,
            output_size=None if size is None else SizeOut(height=size[0], width=size[1]),
            size=PairOut.of_field(field, lambda a: a.size),
            jump=PairOut.of_field(field, lambda a: a.jump),
            start=PairOut.of_field(field, lambda a: a.start),
            effective_padding=PairOut.of_field(field, lambda a: a.effective_padding),
            aligned=field.aligned,
            uniform=field.uniform,
            is_global=field.is_global,
        )


class UnitFieldOut(LayerFieldOut):
    """Where one unit looks: its box with padding, the part in the image, the cells lost."""

    layer: str
    unit: UnitOut
    input: InputShapeOut
    box: BoxOut = Field(description="the whole field; rows/columns < 0 or ≥ size are padding")
    clipped_box: BoxOut | None = Field(
        description="bounding box of the input pixels that can "
        "change the unit; null if it sees only padding"
    )
    padding_cells: int = Field(description="cells of `box` outside the image")
    unreached_cells: int = Field(description="image cells in `box` the unit cannot see")

    @classmethod
    def of_unit(cls, unit: UnitReceptiveField, input_shape: tuple[int, int, int]) -> UnitFieldOut:
        layer = LayerFieldOut.of(unit.field).model_dump()
        return cls(
            **layer,
            layer=unit.field.layer,
            unit=UnitOut(y=unit.y, x=unit.x),
            input=InputShapeOut(
                channels=input_shape[0], height=input_shape[1], width=input_shape[2]
            ),
            box=BoxOut.of(unit.box),
            clipped_box=BoxOut.of(unit.clipped_box),
            padding_cells=unit.padding_cells,
            unreached_cells=unit.unreached_cells,
        )


class LayerFieldsOut(BaseModel):
    model: str
    input: InputShapeOut
    layers: list[LayerFieldOut]
    default_unit: UnitFieldOut | None = Field(
        default=None,
        description="what GET …/receptive-field answers without layer, y and x (the deepest "
        "map's centre), so a page shows a new model in one request; null when no layer has a "
        "feature map",
    )


# --- effective receptive fields -----------------------------------------------------------------


class StackIn(BaseModel):
    """A stack of size-keeping k×k convolutions (Luo et al.'s experiments)."""

    depth: int = Field(8, ge=1, le=PARSE_CEILING)
    kernel: int = Field(3, ge=1, le=PARSE_CEILING, description="odd")
    dilation: int = Field(1, ge=1, le=PARSE_CEILING, description="of the first layer")
    growth: Literal["constant", "doubling"] = "constant"
    activation: Literal["none", "relu", "tanh", "sigmoid"] = "none"
    weights: Literal["uniform", "random"] = "uniform"

    def config(self) -> StackConfig:
        return StackConfig(
            self.depth, self.kernel, self.dilation, self.growth, self.activation, self.weights
        )


def _check(limits: list[tuple[str, int | None, int]]) -> None:
    for field, value, limit in limits:
        if value is not None and value > limit:
            raise CNNCoreError(f"{field} may be at most {limit}, got {value}", field)


class EffectiveIn(BaseModel):
    """A zoo model (`model`) or a conv stack (`stack`), the unit, and the random inputs."""

    model: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    stack: StackIn | None = None
    weights: Literal["initialisation", "trained"] = Field(
        "initialisation", description="zoo models: He-normal weights from `seed`, or trained"
    )
    layer: str | None = Field(None, min_length=1, max_length=200)
    y: int | None = Field(None, ge=0, le=PARSE_CEILING)
    x: int | None = Field(None, ge=0, le=PARSE_CEILING)
    samples: int = Field(16, ge=1, le=PARSE_CEILING)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    height: int | None = Field(
        None, ge=1, le=PARSE_CEILING, description="default: the model's; a stack's: 64"
    )
    width: int | None = Field(None, ge=1, le=PARSE_CEILING)

    def check_limits(self, settings: Settings) -> None:
        """Exactly one network, and the configurable bounds; each refusal names its field."""
        if (self.model is None) == (self.stack is None):
            raise CNNCoreError("send either a zoo model name or a conv stack", "model")
        limits = [
            ("samples", self.samples, settings.max_erf_samples),
            ("height", self.height, settings.max_erf_size),
            ("width", self.width, settings.max_erf_size),
        ]
        if self.stack is not None:
            if self.layer is not None:
                raise CNNCoreError("a stack's unit is on its last layer; leave layer out", "layer")
            limits += _stack_limits(self.stack, settings)
        _check(limits)


class EffectivePictureForm(BaseModel):
    """The text fields of a multipart `POST /api/receptive-field/effective`: a zoo model's unit
    on a picture (the `image` file part, or a built-in `sample`)."""

    model: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    sample: str | None = Field(
        None, max_length=40, description="a built-in picture instead of an upload"
    )
    weights: Literal["initialisation", "trained"] = Field(
        "initialisation",
        description="He-normal weights from `seed`, or the weights /features uses (bundled "
        "trained weights where they exist)",
    )
    run: str | None = Field(
        None, pattern=RUN_ID_PATTERN, description="a training run: its newest checkpoint"
    )
    layer: str | None = Field(None, min_length=1, max_length=200)
    y: int | None = Field(None, ge=0, le=PARSE_CEILING)
    x: int | None = Field(None, ge=0, le=PARSE_CEILING)
    seed: int = Field(0, ge=0, le=2**31 - 1)


def _stack_limits(stack: StackIn, settings: Settings) -> list[tuple[str, int | None, int]]:
    return [
        ("depth", stack.depth, settings.max_erf_depth),
        ("kernel", stack.kernel, settings.max_erf_kernel),
        ("dilation", stack.dilation, settings.max_erf_dilation),
    ]


class SweepIn(BaseModel):
    """The ERF after 1, 2, ..., `stack.depth` layers of one stack."""

    stack: StackIn = Field(default_factory=lambda: StackIn(depth=16))
    size: int = Field(64, ge=1, le=PARSE_CEILING, description="input height and width")
    samples: int = Field(8, ge=1, le=PARSE_CEILING)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    def check_limits(self, settings: Settings) -> None:
        _check(
            [
                ("samples", self.samples, settings.max_erf_samples),
                ("size", self.size, settings.max_erf_size),
                *_stack_limits(self.stack, settings),
            ]
        )


class FitOut(BaseModel):
    centre: PairOut = Field(description="mean row (height) and column (width) of the mass")
    sigma: PairOut = Field(description="standard deviation per axis, input pixels")

    @classmethod
    def of(cls, fit: GaussianFit) -> FitOut:
        return cls(
            centre=PairOut.of(fit.centre_y, fit.centre_x),
            sigma=PairOut.of(fit.sigma_y, fit.sigma_x),
        )


def png_data_url(heatmap: torch.Tensor) -> str:
    """A [0, 1] map as a grey PNG data URL: level = round(255 · value)."""
    return _data_url(unit_pixels(heatmap))


def _data_url(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + png_base64(pixels)


class FeatureMapOut(BaseModel):
    """The unit's layer on the picture, mean over channels, as grey levels of [low, high]."""

    image: str = Field(description="PNG data URL, H′×W′: value = low + level/255 · (high − low)")
    low: float
    high: float

    @classmethod
    def of(cls, map_levels: LayerLevels | None) -> FeatureMapOut | None:
        if map_levels is None:
            return None
        ((low, high),) = map_levels.ranges
        return cls(image=_data_url(map_levels.levels[0]), low=low, high=high)


class EffectiveOut(BaseModel):
    network: str = Field(description="the zoo model's name, or 'stack'")
    weights: str = Field(
        description="initialisation | trained | imagenet | imported | uniform | random"
    )
    input: InputShapeOut
    layer: str
    unit: UnitOut
    samples: int = Field(description="random inputs averaged in one batched backward pass")
    heatmap: str = Field(description="PNG data URL, grey level = 255 · |gradient| / max")
    rows: list[float] = Field(description="share of the mass in each input row")
    columns: list[float] = Field(description="share of the mass in each input column")
    fit: FitOut
    pixels_95: int = Field(description="fewest pixels holding 95% of the mass")
    share_95: float = Field(description="those pixels over the theoretical field in the image")
    theoretical: UnitFieldOut
    picture: str | None = Field(
        None, description="on a picture: what the network receives (PNG data URL, H×W)"
    )
    feature_map: FeatureMapOut | None = Field(
        None, description="on a picture: the unit's layer, mean over channels"
    )
    weights_file: str | None = Field(None, description="trained weights: the file they came from")

    @classmethod
    def of_picture(cls, result: PictureEffectiveField) -> EffectiveOut:
        out = cls.of(result.model, result.weights.source, result.field)
        out.picture = _data_url(result.picture)
        out.feature_map = FeatureMapOut.of(result.feature_levels)
        out.weights_file = result.weights.file
        return out

    @classmethod
    def of(cls, network: str, weights: str, erf: EffectiveField) -> EffectiveOut:
        channels, height, width = input_shape = erf.input_shape
        return cls(
            network=network,
            weights=weights,
            input=InputShapeOut(channels=channels, height=height, width=width),
            layer=erf.layer,
            unit=UnitOut(y=erf.y, x=erf.x),
            samples=erf.samples,
            heatmap=png_data_url(erf.heatmap),
            rows=list(erf.fit.rows),
            columns=list(erf.fit.columns),
            fit=FitOut.of(erf.fit),
            pixels_95=erf.pixels_95,
            share_95=erf.share_95,
            theoretical=UnitFieldOut.of_unit(erf.theoretical, input_shape),
        )


class SweepPointOut(BaseModel):
    depth: int
    theoretical_size: int = Field(description="r after this many layers")
    fit: FitOut
    pixels_95: int
    share_95: float
    clipped: bool = Field(description="the theoretical field runs past the image here")


class SweepOut(BaseModel):
    stack: StackIn
    size: int
    samples: int
    points: list[SweepPointOut]
    erf_exponent: float | None = Field(description="slope of log σ on log depth (√n: 0.5)")
    theoretical_exponent: float | None = Field(description="slope of log r on log depth")

    @classmethod
    def of(cls, query: SweepIn, sweep: DepthSweep) -> SweepOut:
        points = [
            SweepPointOut(
                depth=p.depth,
                theoretical_size=p.theoretical_size,
                fit=FitOut.of(p.fit),
                pixels_95=p.pixels_95,
                share_95=p.share_95,
                clipped=p.clipped,
            )
            for p in sweep.points
        ]
        return cls(
            stack=query.stack,
            size=query.size,
            samples=query.samples,
            points=points,
            erf_exponent=finite_or_none(sweep.erf_exponent),
            theoretical_exponent=finite_or_none(sweep.theoretical_exponent),
        )
