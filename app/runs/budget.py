"""Whether a planned run fits this machine and the server's limits, before any process starts.

Every limit counts what the run will really do, fields left out included: with no
`max_steps_per_epoch` an epoch is every training image once (60 000 MNIST images at batch 1
are 48 000 steps), and with `log_every` 1 each step is a stored event. The memory and work
come from `cnncore.run_cost` (shapes only, checked against measured peaks); a run whose peak
would not fit the memory the machine has free now (its GPU's, on a GPU), or the
`max_run_memory_bytes` setting, is refused with the estimate, naming the field that makes it
large: the batch when the training step dominates, the image size when the images do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.settings import Settings
from cnncore.device import resolve_device
from cnncore.errors import CNNCoreError
from cnncore.run_cost import RunCost, available_memory, estimate_run, model_footprint
from cnncore.training import TrainConfig

__all__ = ["DATASET_IMAGES", "RunSize", "check_run_budget", "run_size"]

# Images in each trainable dataset as loaded (training files only), before any choice of
# classes or limit; shapes draws `shapes_count`. Checked against the loaded datasets in
# tests/app/test_runs_budget.py.
DATASET_IMAGES = {"digits": 1797, "mnist5k": 5000, "mnist": 60_000, "fashion_mnist": 60_000,
                  "cifar10": 50_000}  # fmt: skip
# Events a run stores besides its step events: start, status words and end, and per epoch
# its epoch and checkpoint events.
_FIXED_EVENTS, _EVENTS_PER_EPOCH = 4, 2


@dataclass(frozen=True)
class RunSize:
    """How many images a run trains and validates on, and what it does with them."""

    train_images: int
    val_images: int
    steps_per_epoch: int
    events: int


def run_size(config: TrainConfig, loaded: int, num_classes: int) -> RunSize:
    """The split `cnncore.data.split_dataset` makes of `loaded` images (classes balanced;
    stratified rounding may move an image or two per class), and the steps and events of
    the run on it."""
    data = config.data
    images = loaded
    if data.classes is not None:
        images = math.ceil(loaded * len(set(data.classes)) / num_classes)
    if data.limit is not None:
        images = min(images, data.limit)
    val = round(images * data.val_fraction)
    train = images - val
    if data.train_per_class is not None:
        train = min(train, data.train_per_class * len(set(data.classes or range(num_classes))))
    steps = max(1, math.ceil(train / config.batch_size))
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    events = config.epochs * (math.ceil(steps / config.log_every) + _EVENTS_PER_EPOCH)
    return RunSize(train, val, steps, events + _FIXED_EVENTS)


def _check_counts(config: TrainConfig, size: RunSize, settings: Settings) -> None:
    if size.steps_per_epoch > settings.max_run_steps_per_epoch:
        raise CNNCoreError(
            f"an epoch would take {size.steps_per_epoch} steps ({size.train_images} training "
            f"images in batches of {config.batch_size}); at most "
            f"{settings.max_run_steps_per_epoch} are allowed: raise batch_size or set "
            "max_steps_per_epoch", "max_steps_per_epoch", code="run_too_many_steps",
            ctx={"steps": size.steps_per_epoch, "images": size.train_images,
                 "batch": config.batch_size, "limit": settings.max_run_steps_per_epoch},
        )  # fmt: skip
    if size.events > settings.max_run_events:
        raise CNNCoreError(
            f"the run would record {size.events} events, over the {settings.max_run_events} "
            "a run may keep: raise log_every, or train fewer steps", "log_every",
            code="run_too_many_events", ctx={"events": size.events,
                                             "limit": settings.max_run_events},
        )  # fmt: skip


def _memory_limit(config: TrainConfig, settings: Settings) -> int:
    """What a run may take: the setting, and the share of the device's free memory."""
    device = resolve_device(config.device)
    free = int(available_memory(device) * settings.run_memory_fraction)
    cap = settings.max_run_memory_bytes
    return min(free, cap) if cap else free


def check_run_budget(
    config: TrainConfig, settings: Settings, *, channels: int, side: int, loaded_side: int,
    native_channels: int, num_classes: int, loaded_images: int | None = None,
    source_bytes: int = 0,
) -> RunCost:  # fmt: skip
    """Refuse a run too long or too large for this server (422 naming the field, the estimate
    in ctx). `side` is what the network reads, `loaded_side` the dataset's images as loaded;
    `loaded_images` how many there are when the dataset is not one of DATASET_IMAGES (a
    student's own); `source_bytes` what building the transfer source holds (`estimate_run`)."""
    data = config.data
    loaded = data.shapes_count if data.name == "shapes" else DATASET_IMAGES.get(data.name)
    loaded = loaded if loaded is not None else loaded_images
    if loaded is None:
        raise KeyError(f"how many images {data.name} has is not known")
    size = run_size(config, loaded, num_classes)
    _check_counts(config, size, settings)
    footprint = model_footprint(config.model, channels, side, num_classes, config.activation,
                                config.batch_norm, config.dropout, config.width)  # fmt: skip
    cost = estimate_run(
        footprint, optimizer=config.optimizer, momentum=config.momentum,
        early_stopping=bool(config.early_stopping), batch_size=config.batch_size,
        epochs=config.epochs, steps_per_epoch=size.steps_per_epoch,
        train_images=size.train_images, val_images=size.val_images, channels=channels,
        side=side, loaded_bytes=loaded * native_channels * loaded_side**2 * 4,
        source_bytes=source_bytes,
    )  # fmt: skip
    limit = _memory_limit(config, settings)
    if cost.peak_bytes > limit:
        field = "batch_size" if cost.step_bytes >= cost.data_bytes else "data.image_size"
        raise CNNCoreError(
            f"this run would need about {cost.peak_bytes / 1e9:.1f} GB of memory (images "
            f"{cost.data_bytes / 1e9:.1f} GB, one training step {cost.step_bytes / 1e9:.1f} GB), "
            f"more than the {limit / 1e9:.1f} GB it may take here: lower {field}",
            field, code="run_too_big", ctx={**cost.ctx(), "limit_gb": round(limit / 1e9, 2)},
        )  # fmt: skip
    limit_gmacs = settings.max_run_gmacs
    if cost.macs > limit_gmacs * 1e9:
        raise CNNCoreError(
            f"this run would compute about {cost.macs / 1e9:,.0f} billion multiply-adds, over "
            f"the {limit_gmacs:,} billion a run may take here: train fewer epochs, "
            "fewer images or smaller ones", "epochs", code="run_too_long",
            ctx={**cost.ctx(), "limit_gmacs": limit_gmacs},
        )  # fmt: skip
    return cost
