"""What /train's dataset picker lists (`GET /api/train/datasets`)."""

from __future__ import annotations

from pydantic import BaseModel


class BundledDatasetOut(BaseModel):
    name: str
    channels: int
    side: int  # as loaded (shapes: drawn at the asked size, 28 by default)
    class_names: list[str]
    images: int | None  # training files as loaded (shapes: as many as asked)


class UserClassOut(BaseModel):
    name: str
    images: int


class UserDatasetOut(BaseModel):
    id: str
    name: str
    version: int  # the current one: a run started now trains on it
    versions: list[int]  # earlier versions runs trained on, kept (a run may train on one again)
    classes: list[UserClassOut]
    images: int
    trainable: bool
    reason: str | None  # why not, when it is not


class TrainDatasetsOut(BaseModel):
    bundled: list[BundledDatasetOut]
    user: list[UserDatasetOut]
    missing: list[str]  # ids asked for that the server does not have (deleted)
