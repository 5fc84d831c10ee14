"""Bodies of the model zoo API (`/api/models`): the catalogue, layer summaries, cost comparisons.

Each response model has an `of(...)` constructor from the `cnncore.inspect` / registry dataclass,
so routes stay one line of shaping. Shapes are lists without the batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from app.settings import Settings
from cnncore.blocks import Block, Branch, Merge
from cnncore.errors import CNNCoreError
from cnncore.inspect import ConvCost, CostComparison, LayerSummary, ModelSummary
from cnncore.models import ModelInfo
from cnncore.receptive_field import AxisField, ReceptiveField

# Parse-time ceilings; the configurable limits of `Settings` apply after (`check_limits`).
PARSE_CEILING = 4096


class SummaryQuery(BaseModel):
    """Input of a summary; omitted values take the model's defaults."""

    channels: int | None = Field(None, ge=1, le=PARSE_CEILING)
    height: int | None = Field(None, ge=1, le=PARSE_CEILING)
    width: int | None = Field(None, ge=1, le=PARSE_CEILING)
    num_classes: int | None = Field(
        None, ge=1, le=PARSE_CEILING, description="ignored by models that do not classify"
    )

    def check_limits(self, settings: Settings) -> None:
        """The configurable bounds; each refusal names its field (a 422)."""
        limits = [
            ("channels", self.channels, settings.max_model_channels),
            ("height", self.height, settings.max_model_size),
            ("width", self.width, settings.max_model_size),
            ("num_classes", self.num_classes, settings.max_model_classes),
        ]
        for field, value, limit in limits:
            if value is not None and value > limit:
                raise CNNCoreError(f"{field} may be at most {limit}, got {value}", field)


def _as_list(values: tuple[int, ...] | None) -> list[int] | None:
    return None if values is None else list(values)


class InputOut(BaseModel):
    channels: int
    height: int
    width: int

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> InputOut:
        channels, height, width = shape
        return cls(channels=channels, height=height, width=width)


class ModelOut(BaseModel):
    name: str
    title: str
    family: str
    params: int = Field(description="parameters at the default input and classes")
    default_input: InputOut
    num_classes: int | None = Field(description="null for models that do not classify")
    paper: str

    @classmethod
    def of(cls, info: ModelInfo, params: int) -> ModelOut:
        return cls(
            name=info.name,
            title=info.title,
            family=info.family,
            params=params,
            default_input=InputOut.of(info.default_input.as_tuple()),
            num_classes=info.num_classes,
            paper=info.paper,
        )


class PairOut(BaseModel):
    """A per-axis value: whole numbers stay ints (11, not 11.0)."""

    height: int | float
    width: int | float

    @classmethod
    def of(cls, height: float, width: float) -> PairOut:
        return cls(height=height, width=width)

    @classmethod
    def of_field(cls, field: ReceptiveField, value: Callable[[AxisField], float]) -> PairOut:
        """One number of a receptive field per axis: `PairOut.of_field(f, lambda a: a.jump)`."""
        return cls(height=value(field.height), width=value(field.width))


class ReceptiveFieldOut(BaseModel):
    """What every unit of a layer sees of the input (Araujo et al., Distill 2019), per axis.

    `stride` is the jump: fractional after uneven adaptive pooling or a transposed convolution.
    """

    size: PairOut = Field(description="r: input pixels one unit sees, padding included")
    stride: PairOut = Field(description="jump: input pixels between neighbouring units")
    start: PairOut = Field(description="centre of unit 0's field, in input pixels")
    aligned: bool = Field(description="all paths into the layer centre their fields alike")
    is_global: bool = Field(description="pooled or flattened: every unit sees the whole input")

    @classmethod
    def of(cls, field: ReceptiveField) -> ReceptiveFieldOut:
        return cls(
            size=PairOut.of_field(field, lambda a: a.size),
            stride=PairOut.of_field(field, lambda a: a.jump),
            start=PairOut.of_field(field, lambda a: a.start),
            aligned=field.aligned,
            is_global=field.is_global,
        )


class LayerOut(BaseModel):
    name: str = Field(description="dotted module path, e.g. layer1.0.conv1")
    type: str
    input_shape: list[int] | None
    output_shape: list[int] | None = Field(
        description="null if the layer does not run in eval "
        "mode (GoogLeNet's auxiliary classifiers)"
    )
    params: int
    macs: int
    kernel_size: list[int] | None = None
    stride: list[int] | None = None
    groups: int | None = Field(None, description="conv layers: = input channels if depthwise")
    receptive_field: ReceptiveFieldOut | None = None
    receptive_field_reason: str | None = Field(
        None, description="why `receptive_field` is null (in a summary; null when it is given)"
    )

    @classmethod
    def of(
        cls, row: LayerSummary, field: ReceptiveField | None = None, reason: str | None = None
    ) -> LayerOut:
        return cls(
            name=row.name,
            type=row.type,
            input_shape=_as_list(row.input_shape),
            output_shape=_as_list(row.output_shape),
            params=row.params,
            macs=row.macs,
            kernel_size=_as_list(row.kernel_size),
            stride=_as_list(row.stride),
            groups=row.groups,
            receptive_field=None if field is None else ReceptiveFieldOut.of(field),
            receptive_field_reason=reason,
        )


class BranchOut(BaseModel):
    layers: list[str] = Field(description="layer names on this path; empty: the identity")
    output_shape: list[int] | None

    @classmethod
    def of(cls, branch: Branch) -> BranchOut:
        return cls(layers=list(branch.layers), output_shape=_as_list(branch.output_shape))


class MergeOut(BaseModel):
    """Where a block's paths join: a residual addition or an Inception concatenation."""

    kind: str = Field(description="add | concat")
    before: list[str] = Field(description="layers run before the fork")
    branches: list[BranchOut]
    after: list[str] = Field(description="layers run on the joined map")
    output_shape: list[int] | None

    @classmethod
    def of(cls, merge: Merge) -> MergeOut:
        return cls(
            kind=merge.kind,
            before=list(merge.before),
            branches=[BranchOut.of(branch) for branch in merge.branches],
            after=list(merge.after),
            output_shape=_as_list(merge.output_shape),
        )


class BlockOut(BaseModel):
    name: str = Field(description="dotted path of a container module, e.g. layer1.0")
    type: str
    output_shape: list[int] | None
    merge: MergeOut | None = Field(description="null unless its forward joins paths")

    @classmethod
    def of(cls, block: Block) -> BlockOut:
        return cls(
            name=block.name,
            type=block.type,
            output_shape=_as_list(block.output_shape),
            merge=None if block.merge is None else MergeOut.of(block.merge),
        )


class SummaryOut(BaseModel):
    model: str
    input: InputOut
    num_classes: int | None
    layers: list[LayerOut]
    total_params: int
    total_macs: int
    blocks: list[BlockOut] = Field(
        default_factory=list,
        description="container modules in execution order, with their residual / Inception joins",
    )

    @classmethod
    def of(
        cls,
        name: str,
        num_classes: int | None,
        summary: ModelSummary,
        fields: list[tuple[ReceptiveField | None, str | None]],
        blocks: tuple[Block, ...] = (),
    ) -> SummaryOut:
        """`fields`: per summary row, its receptive field or the reason there is none."""
        return cls(
            model=name,
            input=InputOut.of(summary.input_shape),
            num_classes=num_classes,
            layers=[
                LayerOut.of(row, *field) for row, field in zip(summary.layers, fields, strict=True)
            ],
            total_params=summary.total_params,
            total_macs=summary.total_macs,
            blocks=[BlockOut.of(block) for block in blocks],
        )


class ConvCostOut(BaseModel):
    label: str
    layers: list[LayerOut]
    params: int
    macs: int

    @classmethod
    def of(cls, cost: ConvCost) -> ConvCostOut:
        return cls(
            label=cost.label,
            layers=[LayerOut.of(row) for row in cost.layers],
            params=cost.params,
            macs=cost.macs,
        )


class CostComparisonOut(BaseModel):
    name: str = Field(description="bottleneck | depthwise_separable")
    source: str = Field(description="model and module path the factorised layers come from")
    input: InputOut
    output: InputOut
    standard: ConvCostOut
    factorised: ConvCostOut
    macs_ratio: float = Field(description="factorised / standard")
    params_ratio: float
    formula: str

    @classmethod
    def of(cls, comparison: CostComparison) -> CostComparisonOut:
        return cls(
            name=comparison.name,
            source=comparison.source,
            input=InputOut.of(comparison.input_shape),
            output=InputOut.of(comparison.output_shape),
            standard=ConvCostOut.of(comparison.standard),
            factorised=ConvCostOut.of(comparison.factorised),
            macs_ratio=float(comparison.macs_ratio),
            params_ratio=float(comparison.params_ratio),
            formula=comparison.formula,
        )
