"""Request and response bodies of a student's own datasets (`/api/datasets`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.files import DATASET_ID_PATTERN
from app.datasets.store import DatasetRecord, ImageRecord, NewImage
from cnncore.datasets.user_images import DIGEST_PATTERN

__all__ = [
    "ClassIn",
    "DatasetCreate",
    "DatasetCreated",
    "DatasetOut",
    "DatasetRename",
    "ImageMove",
    "ImageOut",
    "PicturesAdded",
    "dataset_out",
    "image_out",
]

DatasetId = Annotated[str, Field(pattern=DATASET_ID_PATTERN, examples=["3f9a1c0b7d2e4a51"])]
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
# A class or dataset name as people write it: any letters (Korean too), digits, spaces and a
# few marks; no slashes or control characters (it becomes a folder name in an export).
Name = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[\w][\w .\-()']*$")]
SOURCES = ("file", "drawing", "camera")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(_Strict):
    name: Name = "my pictures"
    classes: list[Name] = Field(default_factory=list, max_length=100)


class DatasetRename(_Strict):
    name: Name


class ClassIn(_Strict):
    name: Name


class ImageMove(_Strict):
    class_id: int = Field(ge=0, le=1_000_000)


class PicturesForm(_Strict):
    """The text fields of a pictures upload (multipart, beside the `files` parts)."""

    class_id: int = Field(ge=0, le=1_000_000)
    source: Literal[SOURCES] = "file"  # type: ignore[valid-type]


class ClassOut(BaseModel):
    id: int
    name: str
    images: int


class DatasetOut(BaseModel):
    id: str
    name: str
    version: int  # raised by every change; a run trains on the version it started with
    created_at: float
    updated_at: float
    classes: list[ClassOut]
    images: int
    bytes: int
    pixels: int
    limits: dict[str, int]  # what one dataset may hold: images, classes, bytes, pixels


class DatasetCreated(BaseModel):
    id: str
    owner_token: str  # every change needs it (header X-Dataset-Token); shown once
    dataset: DatasetOut


class ImageOut(BaseModel):
    digest: str
    class_id: int
    width: int
    height: int
    bytes: int
    source: str
    url: str


class AddedOut(BaseModel):
    file: str  # the name it was sent with
    digest: str
    class_id: int


class DuplicateOut(AddedOut):
    """A picture the dataset already holds (in class `class_id`): not added again."""


class PicturesAdded(BaseModel):
    dataset: DatasetOut
    added: list[AddedOut]
    duplicates: list[DuplicateOut]


def dataset_out(record: DatasetRecord, limits: dict[str, int]) -> DatasetOut:
    return DatasetOut(
        id=record.id, name=record.name, version=record.version, created_at=record.created_at,
        updated_at=record.updated_at, images=record.images, bytes=record.bytes,
        pixels=record.pixels, limits=limits,
        classes=[ClassOut(id=c.id, name=c.name, images=c.images) for c in record.classes],
    )  # fmt: skip


def image_out(dataset_id: str, image: ImageRecord) -> ImageOut:
    return ImageOut(digest=image.digest, class_id=image.class_id, width=image.width,
                    height=image.height, bytes=image.bytes, source=image.source,
                    url=f"/api/datasets/{dataset_id}/images/{image.digest}.png")  # fmt: skip


def added_out(image: NewImage, class_id: int | None = None) -> dict:
    return {"file": image.file, "digest": image.digest,
            "class_id": image.class_id if class_id is None else class_id}  # fmt: skip
