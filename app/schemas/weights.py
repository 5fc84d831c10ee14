"""`GET /api/weights`: every zoo model's weights — bundled, installed ImageNet, training runs,
initialisation — with file, size, source, digest and published accuracy."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cnncore.pretrained import ModelWeights, PublishedWeights

# backbone: a bundled file kept only as a transfer source (its name is the file's stem)
Kind = Literal["bundled", "backbone", "imagenet", "imported", "run", "initialisation"]


class WeightsFileOut(BaseModel):
    kind: Kind
    file: str | None = Field(None, description="file name (never a path)")
    size: int | None = Field(None, description="bytes on disk")
    source: str = Field(description="a URL, a training run id, or what made the file")
    sha256: str | None = Field(
        None, description="digest of the published (or imported) file it was made from"
    )
    top1: float | None = Field(None, description="published ImageNet-1k top-1 accuracy, %")
    top5: float | None = None
    installed: str | None = Field(None, description="when it was installed (ISO time)")
    options: dict[str, bool | int | float | str] | None = Field(
        None,
        description="run options a bundled file records beyond its zoo model (batch_norm, "
        "width…): a run that starts from it is built with them",
    )


class PublishedOut(BaseModel):
    url: str
    file: str
    top1: float
    top5: float
    params: int
    recipe: str

    @classmethod
    def of(cls, published: PublishedWeights) -> PublishedOut:
        return cls(url=published.url, file=published.file_name, top1=published.top1,
                   top5=published.top5, params=published.params,
                   recipe=published.recipe)  # fmt: skip


class ModelWeightsOut(BaseModel):
    model: str
    chosen: Kind = Field(description="what the pages use now (`auto`)")
    weights: list[WeightsFileOut]
    published: PublishedOut | None = Field(
        None, description="torchvision's ImageNet file `cnnviz weights get` installs"
    )
    command: str | None = Field(None, description="the command that gets the published file")

    @classmethod
    def of(cls, row: ModelWeights, runs: list[tuple[str, str]]) -> ModelWeightsOut:
        """`runs`: (run id, checkpoint file name) of the runs that trained this model."""
        files: list[WeightsFileOut] = []
        if row.bundled:
            files.append(WeightsFileOut(kind="bundled", file=row.bundled, size=row.bundled_size,
                                        source="scripts/train_small_models.py",
                                        sha256=row.bundled_sha256,
                                        options=row.bundled_options))  # fmt: skip
        files += [WeightsFileOut(kind="backbone", file=name, size=size, sha256=sha256,
                                 source="scripts/train_small_models.py", options=options)
                  for name, size, sha256, options in row.backbones]  # fmt: skip
        if row.installed:
            meta = row.installed
            files.append(WeightsFileOut(
                kind=meta.source, file=meta.file, size=meta.size,  # type: ignore[arg-type]
                source=meta.url or meta.original_file, sha256=meta.sha256, top1=meta.top1,
                top5=meta.top5, installed=meta.installed,
            ))  # fmt: skip
        files += [WeightsFileOut(kind="run", file=checkpoint, source=run) for run, checkpoint
                  in runs]  # fmt: skip
        files.append(WeightsFileOut(kind="initialisation", source="seed 0"))
        return cls(
            model=row.model,
            chosen=row.chosen,  # type: ignore[arg-type]
            weights=files,
            published=PublishedOut.of(row.published) if row.published else None,
            command=row.command,
        )
