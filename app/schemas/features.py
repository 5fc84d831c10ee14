"""Bodies of the feature-map API (`/api/features`): the multipart form and the answer.

Maps travel as PNG URLs, never as float JSON: a layer entry carries its shape, how its channels
are tiled (`grid`, `tile`) and each shown channel's value range, so the page can read a value
back from a pixel: value = low + level / 255 · (high − low).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.schemas.common import finite_or_none
from app.schemas.runs import RUN_ID_PATTERN
from cnncore.class_names import localised_names
from cnncore.familiarity import Familiarity
from cnncore.features import (
    FILTERS_PICTURE,
    STEP_PICTURE,
    FeatureMaps,
    LayerLevels,
    Prediction,
    atlas_grid,
)
from cnncore.images import DecodedImage
from cnncore.pretrained import IMAGENET_LABELS, InstalledWeights
from cnncore.weights import WeightsInfo

Colormap = Literal["viridis", "magma", "gray"]
Normalise = Literal["per_channel", "per_layer"]
Mode = Literal["learned", "handcrafted"]


class FeaturesForm(BaseModel):
    """The text fields of `POST /api/features` (the picture is the `image` file part)."""

    model: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    sample: str | None = Field(
        None, max_length=40, description="a built-in picture instead of an upload"
    )
    colormap: Colormap = "viridis"
    normalise: Normalise = "per_channel"
    mode: Mode = "learned"
    run: str | None = Field(
        None,
        pattern=RUN_ID_PATTERN,
        description="a training run: its newest checkpoint instead of the model's bundled "
        "weights (learned mode; the run fixes the model)",
    )


class InputOut(BaseModel):
    source: Literal["upload", "sample"]
    sample: str | None
    format: str
    mode: str  # colour mode in the file
    width: int
    height: int
    orientation: int  # EXIF orientation found (1 = upright)
    shape: list[int]  # what the network receives: channels, height, width

    @classmethod
    def of(cls, image: DecodedImage, sample: str | None, shape: tuple[int, ...]) -> InputOut:
        return cls(
            source="sample" if sample else "upload",
            sample=sample,
            format=image.format,
            mode=image.mode,
            width=image.width,
            height=image.height,
            orientation=image.orientation,
            shape=list(shape),
        )


class InstalledOut(BaseModel):
    """Where installed ImageNet weights came from and what torchvision reports for them."""

    original_file: str
    url: str | None  # None: imported from a file of unknown origin
    sha256: str  # of the original file
    labels: str | None  # "imagenet-1k": the outputs are ImageNet-1k's classes, in its order
    top1: float | None  # published ImageNet-1k validation accuracy, percent
    top5: float | None
    recipe: dict[str, Any]  # resize, crop, interpolation, mean, std

    @classmethod
    def of(cls, meta: InstalledWeights) -> InstalledOut:
        return cls(
            original_file=meta.original_file,
            url=meta.url,
            sha256=meta.sha256,
            labels=meta.labels,
            top1=meta.top1,
            top5=meta.top5,
            recipe=meta.preprocessing,
        )


class WeightsOut(BaseModel):
    source: Literal["trained", "imagenet", "imported", "initialisation", "uploaded"]
    file: str | None
    dataset: str | None
    metric: str | None
    score: float | None
    epochs: int | None
    run: str | None = None  # the training run whose checkpoint `file` is
    installed: InstalledOut | None = None  # weights installed by `cnnviz weights get/add`

    @classmethod
    def of(cls, weights: WeightsInfo | None, run: str | None = None) -> WeightsOut | None:
        if weights is None:
            return None
        trained, installed = weights.trained, weights.pretrained
        return cls(
            run=run,
            source=weights.source,  # type: ignore[arg-type]
            file=weights.file,
            dataset=trained.dataset
            if trained
            else "ImageNet-1k"
            if installed and installed.labels
            else None,
            metric=trained.metric if trained else None,
            score=trained.score if trained else None,
            epochs=trained.epochs if trained else None,
            installed=InstalledOut.of(installed) if installed else None,
        )


class StepOut(BaseModel):
    step: str
    size: list[int]  # height, width after the step
    url: str


class LayerOut(BaseModel):
    name: str  # dotted module path
    type: str
    shape: list[int]  # output without the batch axis
    channels: int  # channels, or units when `units` is true
    channels_shown: int  # the first ones; a layer with more says so
    units: bool  # true: no spatial extent, all values folded row by row into one tile
    grid: list[int]  # rows, cols of tiles in the atlas (1-pixel gaps between tiles)
    tile: list[int]  # height, width of one tile
    # [low, high] per shown channel; null for an end at ±inf or NaN (then `finite` is false)
    ranges: list[list[float | None]]
    url: str
    finite: bool = Field(
        True,
        description="false: a shown channel's values overflowed float32 (±inf) or are NaN; "
        "its range ends are null and those values are drawn at level 0",
    )

    @classmethod
    def of(cls, layer: LayerLevels, url: str) -> LayerOut:
        rows, cols = atlas_grid(layer.tiles)
        return cls(
            name=layer.name,
            type=layer.type,
            shape=list(layer.shape),
            channels=layer.channels,
            channels_shown=layer.channels_shown,
            units=layer.units,
            grid=[rows, cols],
            tile=list(layer.tile_shape[1:]),  # the levels themselves may be made later
            ranges=[[finite_or_none(low), finite_or_none(high)] for low, high in layer.ranges],
            url=url,
            finite=layer.finite,
        )


class PredictionOut(BaseModel):
    label: str
    prob: float | None  # None: NaN (logits that overflowed)
    index: int = -1  # the class number (what /api/explanations calls `target`)
    # the class name in each page language, where cnncore.class_names knows it (ImageNet, shapes)
    names: dict[str, str] | None = None

    @classmethod
    def of(cls, prediction: Prediction, table: dict[str, tuple[str, ...]] | None) -> PredictionOut:
        names = None
        if table is not None and 0 <= prediction.index < len(table["en"]):
            names = {lang: table[lang][prediction.index] for lang in table}
        prob = finite_or_none(prediction.prob)
        return cls(label=prediction.label, prob=prob, index=prediction.index,
                   names=names)  # fmt: skip


class FamiliarityOut(BaseModel):
    """How far the picture lies from the model's training pictures (cnncore.familiarity)."""

    score: float  # Mahalanobis distance to the nearest class of the training pictures
    threshold: float  # 95 % of held-out training-distribution pictures are at most this far
    unlike: bool  # score > threshold: the prediction says little about this picture
    method: Literal["mahalanobis"]

    @classmethod
    def of(cls, found: Familiarity | None) -> FamiliarityOut | None:
        if found is None:
            return None
        return cls(
            score=found.score,
            threshold=found.threshold,
            unlike=found.unlike,
            method=found.method,  # type: ignore[arg-type]
        )


class FeaturesOut(BaseModel):
    id: str
    model: str
    mode: Mode
    normalise: Normalise
    colormap: Colormap
    cached: bool  # true: no forward pass was needed (same picture, model and options)
    input: InputOut
    weights: WeightsOut | None  # None in hand-crafted mode: the filters are designed
    preprocessing: list[StepOut]
    layers: list[LayerOut]
    filters_url: str | None
    predictions: list[PredictionOut] | None
    # only for bundled classifiers whose weights carry the statistics (learned mode, no run)
    familiarity: FamiliarityOut | None = None

    @classmethod
    def of(
        cls,
        result_id: str,
        maps: FeatureMaps,
        image: DecodedImage,
        sample: str | None,
        weights: WeightsInfo | None,
        colormap: str,
        cached: bool,
        url: Callable[[str], str],
        run: str | None = None,
    ) -> FeaturesOut:
        """`url(name)` gives the PNG address of the picture called `name`."""
        installed = weights.pretrained if weights is not None else None
        imagenet = installed is not None and installed.labels == IMAGENET_LABELS
        table = localised_names(weights.labels if weights is not None else None, imagenet=imagenet)
        return cls(
            id=result_id,
            model=maps.model,
            mode=maps.mode,  # type: ignore[arg-type]
            normalise=maps.normalise,
            colormap=colormap,
            cached=cached,  # type: ignore[arg-type]
            input=InputOut.of(image, sample, maps.input_shape),
            weights=WeightsOut.of(weights, run),
            preprocessing=[
                StepOut(step=s.step, size=list(s.size), url=url(STEP_PICTURE.format(s.step)))
                for s in maps.preprocessing
            ],
            layers=[LayerOut.of(layer, url(layer.name)) for layer in maps.layers],
            filters_url=url(FILTERS_PICTURE) if maps.filters is not None else None,
            predictions=None
            if maps.predictions is None
            else [PredictionOut.of(p, table) for p in maps.predictions],
        )


class SampleOut(BaseModel):
    name: str
    width: int
    height: int
    url: str
