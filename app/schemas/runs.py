"""Request and response bodies of the training-run API (`/api/runs`).

`RunCreate` mirrors `cnncore.training.TrainConfig` with bounds, so a bad config is a 422 naming
its field before any process starts; the limits that are settings (epochs, batch size, steps,
models) are checked after parsing by `check_run_limits`. Paths never come from a request: the
local dataset folder is a setting, and uploaded archives are not trainable through this API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.files import DATASET_ID_PATTERN
from app.schemas.common import at_most
from app.settings import Settings
from cnncore.activations import ACTIVATIONS
from cnncore.data import BUNDLED_DATASETS
from cnncore.datasets.standard import STANDARD_DATASETS
from cnncore.errors import CNNCoreError
from cnncore.model_options import INITS
from cnncore.optim import LOSSES, OPTIMIZERS, SCHEDULES
from cnncore.training import MAX_STEP_DELAY_S

RUN_ID_PATTERN = r"^[0-9a-f]{12}$"
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, examples=["3f9a1c0b7d2e"])]
# A dotted module path such as `features` or `features.0` (cnnviz's layer names).
LayerPrefix = Annotated[
    str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
]
TRAINABLE_DATASETS = (*BUNDLED_DATASETS, *STANDARD_DATASETS, "user")  # user: data.dataset


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataIn(_Strict):
    name: Literal[TRAINABLE_DATASETS] = "digits"  # type: ignore[valid-type]
    image_size: int | None = Field(None, ge=4, le=256)
    fit: Literal["scale", "pad"] = "scale"
    channels: Literal[1, 3] | None = None
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    limit: int | None = Field(None, ge=10, le=10_000_000)
    classes: list[Annotated[int, Field(ge=0, le=999)]] | None = Field(
        None, min_length=2, max_length=1000
    )
    train_per_class: int | None = Field(None, ge=1, le=1_000_000)
    shapes_count: int = Field(3000, ge=10, le=20_000)
    # name "user": the id of a student's own dataset (/api/datasets); the run keeps the version
    # it starts with
    dataset: str | None = Field(None, pattern=DATASET_ID_PATTERN)
    # an earlier version of it that a run trained on (None: the current one)
    dataset_version: int | None = Field(None, ge=1, le=1_000_000_000)


class AugmentIn(_Strict):
    shift: int = Field(0, ge=0, le=16)
    rotation: float = Field(0.0, ge=0.0, le=180.0)
    flip: bool = False
    brightness: float = Field(0.0, ge=0.0, le=1.0)


class InitFrom(_Strict):
    """Transfer learning: start from another run's newest checkpoint (`run_id`), or from a
    model's weights (`weights` "bundled": the trained small models shipped with cnnviz;
    "imagenet": torchvision's published weights once installed; "uploaded": a model its
    owner uploaded, `onnx_<id>` or `weights_<id>`, with its owner token in X-Model-Token),
    named by `model`."""

    run_id: RunId | None = None
    weights: Literal["bundled", "imagenet", "uploaded"] | None = None
    model: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    freeze: list[LayerPrefix] = Field(default_factory=list, max_length=32)
    freeze_backbone: bool = False  # every layer but the head stops learning
    replace_head: bool = True


class RunCreate(_Strict):
    """A training run's configuration (see `cnncore.training.TrainConfig` for each field)."""

    label: str = Field("", max_length=80, description="a name for run lists and chart legends")
    model: str = Field("lenet5", min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    data: DataIn = Field(default_factory=DataIn)
    activation: Literal[ACTIVATIONS] | None = None  # type: ignore[valid-type]
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    init: Literal[INITS] = "default"  # type: ignore[valid-type]
    init_std: float = Field(0.01, gt=0.0, le=10.0)
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    schedule: Literal[SCHEDULES] = "constant"  # type: ignore[valid-type]
    step_size: int = Field(1, ge=1, le=1000)
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    loss: Literal[LOSSES] = "cross_entropy"  # type: ignore[valid-type]
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    epochs: int = Field(3, ge=1, description="at most the max_run_epochs setting")
    batch_size: int = Field(64, ge=1, description="at most the max_run_batch_size setting")
    augment: AugmentIn = Field(default_factory=AugmentIn)
    early_stopping: int = Field(0, ge=0, le=100)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: str | None = Field(None, pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$",
                               description="None: the server's device setting")  # fmt: skip
    max_steps_per_epoch: int | None = Field(None, ge=1)
    step_delay_s: float = Field(0.0, ge=0.0, le=MAX_STEP_DELAY_S,
                                description="slow mode: each step's least seconds")  # fmt: skip
    log_every: int = Field(1, ge=1, le=1000)
    norms_every: int = Field(10, ge=1, le=1000)
    histogram_bins: int = Field(30, ge=2, le=100)
    max_misclassified: int = Field(8, ge=0, le=32)
    activation_images: int = Field(64, ge=1, le=512)
    init_from: InitFrom | None = None


def check_run_limits(body: RunCreate, settings: Settings) -> None:
    """The bounds that are settings, each naming its field (422)."""
    if body.model not in settings.run_models:
        raise CNNCoreError(
            f"training {body.model!r} is not offered here; choose from "
            f"{', '.join(settings.run_models)}",
            "model",
        )
    at_most("epochs", body.epochs, settings.max_run_epochs, "number of epochs")
    at_most("batch_size", body.batch_size, settings.max_run_batch_size, "batch size")
    if body.max_steps_per_epoch is not None:
        at_most("max_steps_per_epoch", body.max_steps_per_epoch,
                settings.max_run_steps_per_epoch, "number of steps per epoch")  # fmt: skip


class RunOut(BaseModel):
    """A run as lists and the run page show it."""

    id: str
    label: str
    status: str
    source: str  # "web" or "cli"
    model: str
    dataset: str
    created_at: float
    updated_at: float
    error: str | None
    checkpoint: str | None
    summary: dict[str, Any]
    last_event_id: int
    config: dict[str, Any]


class RunCreated(BaseModel):
    id: str
    status: str
    events_url: str
    owner_token: str  # pause, resume and stop need it (header X-Run-Token); shown once


class CheckpointOut(BaseModel):
    file: str
    bytes: int
    final: bool
    epoch: int
    step: int
    val_accuracy: float | None
    layers: list[str]  # weighted layers, for choosing what to freeze in a transfer run
    head: str


class MetricsOut(BaseModel):
    id: str
    label: str
    status: str
    steps: list[dict[str, Any]]
    epochs: list[dict[str, Any]]


class HeldOutPicture(BaseModel):
    index: int  # position in the run's held-out split (validation order)
    true: int
    predicted: int
    confidence: float | None  # null where the network's output is not finite (a diverged run)
    url: str  # the picture as the network read it (PNG)


class HeldOutOut(BaseModel):
    """A run's held-out split, its network's per-class accuracy and confusion matrix (from
    the checkpoint named), and the pictures of one cell when asked (`true`, `predicted`)."""

    run_id: str
    checkpoint: str
    epoch: int
    class_names: list[str]
    train_counts: list[int]
    val_counts: list[int]
    confusion: list[list[int]]  # [true][predicted]
    per_class_accuracy: list[float | None]
    accuracy: float
    cell: list[int] | None  # [true, predicted] of the pictures listed
    total: int  # pictures in that cell (the list may stop at `limit`)
    pictures: list[HeldOutPicture]
