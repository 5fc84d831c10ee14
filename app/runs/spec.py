"""From a validated request to a run: the config that is stored, and the spec a worker runs.

The stored config is `TrainConfig.to_dict()` plus `label` and `init_from`, exactly what was
trained (a transfer run's architecture is the source's, whatever the request said), so a
stored run can be repeated, exported and compared field by field.

Planning also checks the config against the dataset it names, from what is known of each
dataset without loading an image (channels, side, number of classes): the chosen classes,
the image size, whether the model can take that size, and for a transfer run whether the
source network fits the new task. What would otherwise fail minutes later in the worker is a
422 naming the field before any process starts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from app.runs.budget import check_run_budget
from app.runs.store import RunStore
from app.schemas.runs import InitFrom, RunCreate, check_run_limits
from app.settings import Settings
from cnncore.data import USER_SIDE, DataConfig
from cnncore.datasets.shapes import SHAPE_CLASSES, SHAPE_SIDES
from cnncore.datasets.standard import STANDARD_DATASETS
from cnncore.device import resolve_device
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier, fit_input_size
from cnncore.models import get_model_info
from cnncore.onnx_import import OnnxLimits
from cnncore.training import TrainConfig
from cnncore.transfer import TransferPlan, plan_transfer, plan_transfer_from
from cnncore.transfer_sources import WeightsSource, weights_source

__all__ = [
    "CHECKPOINT_FILE",
    "FINAL_CHECKPOINT",
    "DATASET_FACTS",
    "RunSpec",
    "check_dataset_fit",
    "epoch_checkpoint",
    "newest_checkpoint",
    "plan_run",
]

FINAL_CHECKPOINT = "final.safetensors"
CONVERSION_COPIES = 3  # an uploaded ONNX file converted holds ~3 × its bytes at once
# Every checkpoint name is made here, by the server; a name read back is checked against this.
CHECKPOINT_FILE = re.compile(r"^(epoch-\d{3,5}|final)\.safetensors$")


# What each trainable dataset is before any image is loaded: (channels, side, class names).
# Shapes are drawn at the asked size (data.image_size, 28 by default). Checked against the
# loaded datasets in tests/app/test_runs_plan.py.
_DIGIT_NAMES = tuple("0123456789")
DATASET_FACTS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "shapes": (1, 28, SHAPE_CLASSES),
    "digits": (1, 8, _DIGIT_NAMES),
    "mnist5k": (1, 28, _DIGIT_NAMES),
    "mnist": (1, 28, tuple(STANDARD_DATASETS["mnist"].class_names)),
    "fashion_mnist": (1, 28, tuple(STANDARD_DATASETS["fashion_mnist"].class_names)),
    "cifar10": (3, 32, tuple(STANDARD_DATASETS["cifar10"].class_names)),
}


def epoch_checkpoint(epoch: int) -> str:
    return f"epoch-{epoch:03d}.safetensors"


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs, picklable (it crosses into a spawned process)."""

    run_id: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    checkpoint_dir: str
    source_checkpoint: str | None = None  # transfer learning: the source run's checkpoint
    source_weights: tuple[str, str, str] | None = None  # or weights: (kind, model, file)
    freeze: tuple[str, ...] = ()
    replace_head: bool = True
    keep_checkpoints: int = 3  # newest epoch checkpoints kept (the final one always is)
    beat_seconds: float = 5.0  # how often the worker tells the server it is alive
    source_limits: OnnxLimits | None = None  # an uploaded ONNX source is converted within them

    @classmethod
    def of(
        cls, run_id: str, stored: dict[str, Any], checkpoint_dir: Path,
        source_checkpoint: Path | None, keep_checkpoints: int,
    ) -> RunSpec:  # fmt: skip
        config = {k: v for k, v in stored.items() if k not in ("label", "init_from")}
        transfer = stored.get("init_from") or {}
        weights = None
        if transfer.get("weights"):
            weights = (transfer["weights"], transfer["model"], transfer["weights_file"])
        return cls(
            run_id, config, str(checkpoint_dir),
            str(source_checkpoint) if source_checkpoint else None, weights,
            tuple(transfer.get("freeze", ())), bool(transfer.get("replace_head", True)),
            keep_checkpoints,
        )  # fmt: skip


def newest_checkpoint(store: RunStore, checkpoints_dir: Path, run_id: str) -> Path:
    """The newest checkpoint file of a run (its final one once finished); LookupError when
    the run or its checkpoint does not exist. Only server-made names are ever joined."""
    record = store.get_run(run_id)
    if record is None:
        raise LookupError(f"no training run has the id {run_id!r}")
    name = record.checkpoint
    if name is None or not CHECKPOINT_FILE.match(name):
        raise LookupError(f"run {run_id} has no checkpoint yet (one is saved every epoch)")
    path = checkpoints_dir / run_id / name
    if not path.is_file():
        raise LookupError(f"the checkpoint {name} of run {run_id} is missing on disk")
    return path


def _chosen_classes(data: DataConfig, names: tuple[str, ...]) -> int:
    """How many classes the run learns; the chosen ones must exist, each named once."""
    if data.classes is None:
        return len(names)
    twice = sorted(c for c, n in Counter(data.classes).items() if n > 1)
    if twice:
        raise CNNCoreError(f"class {twice[0]} is listed more than once; name each class once",
                           "data.classes")  # fmt: skip
    missing = sorted(c for c in data.classes if not 0 <= c < len(names))
    if missing:
        named = names != tuple(str(i) for i in range(len(names)))  # digits are their own names
        shown = ", ".join(f"{i} {n}" for i, n in enumerate(names)) if named else ""
        raise CNNCoreError(
            f"{data.name} has {len(names)} classes, numbered 0 to {len(names) - 1}"
            f"{f' ({shown})' if shown else ''}; {missing[0]} is not one of them",
            "data.classes",
        )  # fmt: skip
    if len(data.classes) < 2:
        raise CNNCoreError("a classifier needs at least 2 classes to tell apart", "data.classes")
    return len(data.classes)


def _loaded_side(data: DataConfig, native: int) -> int:
    """The side of the images as loaded (before the model asks for more)."""
    if data.name == "shapes":
        side = data.image_size or native
        low, high = SHAPE_SIDES
        if not low <= side <= high:
            raise CNNCoreError(f"shapes are drawn {low} to {high} pixels wide; {side} is not",
                               "data.image_size")  # fmt: skip
        return side
    if data.image_size is None:
        return native
    _check_resize(data.fit, native, data.image_size, data.name)
    return data.image_size


def _check_resize(fit: str, side: int, to: int, what: str) -> None:
    if fit == "pad" and to < side:
        raise CNNCoreError(
            f"padding only grows images: {what} is {side}×{side}, it cannot be padded down to "
            f"{to}×{to}; use fit 'scale'", "data.image_size",
        )  # fmt: skip


@lru_cache(maxsize=256)
def _refusal(model: str, channels: int, side: int) -> str | None:
    """Why the model cannot take channels×side×side images (None when it can). Shapes only
    (activation, batch norm and dropout keep them): one forward pass on the meta device."""
    try:
        with torch.device("meta"):
            net = build_classifier(model, (channels, side, side), 2).eval()
            net(torch.zeros(1, channels, side, side))
    except (RuntimeError, ValueError) as exc:  # CNNCoreError is a ValueError
        return str(exc).split("\n")[0]
    return None


def _check_model_takes(model: str, channels: int, side: int) -> int:
    """The side the model reads (`fit_input_size`), once it is sure to take it."""
    try:
        side = fit_input_size(model, channels, side)  # what the trainer grows images to
    except CNNCoreError as exc:
        raise CNNCoreError(str(exc), "data.image_size") from exc
    reason = _refusal(model, channels, side)
    if reason is None:
        return side
    # The smallest side it takes (bisection: a network that takes a side takes larger ones).
    low, high = side, max(side, get_model_info(model).default_input.height)
    while low < high:
        middle = (low + high) // 2
        takes = _refusal(model, channels, middle) is None
        low, high = (low, middle) if takes else (middle + 1, high)
    raise CNNCoreError(
        f"{model} cannot take {side}×{side} images: its layers shrink them to nothing "
        f"({reason}); set data.image_size to at least {low}, or choose another model",
        "data.image_size",
    )  # fmt: skip


def check_dataset_fit(
    config: TrainConfig, transfer: TransferPlan | None = None, replace_head: bool = True,
    settings: Settings | None = None, source_bytes: int = 0,
) -> None:  # fmt: skip
    """Refuse what would fail once the dataset is loaded (in the worker), naming the field:
    classes that do not exist or repeat, sizes the dataset or the model cannot have, and a
    transfer source that reads other images or predicts another number of classes; with
    `settings`, also a run too long or too large for the server (`app.runs.budget`)."""
    data = config.data
    facts = DATASET_FACTS.get(data.name) or _user_facts(data)
    if facts is None:
        return  # an uploaded archive: its classes and sizes are known once it is read
    native_channels, native_side, names = facts
    classes = _chosen_classes(data, names)
    _check_user_split(data)
    channels = data.channels or native_channels
    side = _loaded_side(data, native_side)
    if transfer is None:
        model_side = _check_model_takes(config.model, channels, side)
    else:
        _check_transfer_fits(config, transfer, replace_head, channels, side, classes)
        model_side = transfer.input_shape[1]
    if settings is not None:
        loaded_side = side if data.name == "shapes" else native_side
        check_run_budget(config, settings, channels=channels, side=model_side,
                         loaded_side=loaded_side, native_channels=native_channels,
                         num_classes=classes, loaded_images=_user_images(data),
                         source_bytes=source_bytes)  # fmt: skip


def _user_facts(data: DataConfig) -> tuple[int, int, tuple[str, ...]] | None:
    """A student's dataset version (its manifest): RGB pictures, each read at image_size."""
    if data.name != "user" or not data.manifest:
        return None
    names = json.loads(Path(data.manifest).read_text())["classes"]
    return 3, data.image_size or USER_SIDE, tuple(names)


def _check_user_split(data: DataConfig) -> None:
    """The run's split of a student's dataset (`cnncore.data`: round(val_fraction × n) of each
    class's n pictures held out) must hold some picture out and leave each class one to learn
    from; otherwise the worker would fail minutes later."""
    if data.name != "user" or not data.manifest:
        return
    counts = Counter(label for _, label in json.loads(Path(data.manifest).read_text())["images"])
    held = {c: round(data.val_fraction * n) for c, n in counts.items()}
    if not any(held.values()):
        raise CNNCoreError(
            f"with {min(counts.values())} to {max(counts.values())} pictures per class and "
            f"val_fraction {data.val_fraction:g} no picture is held out to test on: add "
            "pictures or raise data.val_fraction", "data.val_fraction",
        )  # fmt: skip
    if any(held[c] >= n for c, n in counts.items()):
        raise CNNCoreError(f"val_fraction {data.val_fraction:g} holds out every picture of a "
                           "class: lower it", "data.val_fraction")  # fmt: skip


def _user_images(data: DataConfig) -> int | None:
    if data.name != "user" or not data.manifest:
        return None
    return len(json.loads(Path(data.manifest).read_text())["images"])


def _user_dataset(
    dataset_id: str | None, version: int | None,
    dataset_of: Callable[..., tuple[Path, int]] | None,
) -> dict[str, Any]:  # fmt: skip
    """The data fields of a run on a student's dataset: its current version, frozen now (or
    an earlier `version` a run trained on)."""
    if dataset_id is None:
        raise CNNCoreError("name the dataset to train on (data.dataset)", "data.dataset")
    if dataset_of is None:
        raise CNNCoreError("this server keeps no student datasets", "data.dataset")
    try:
        manifest, version = dataset_of(dataset_id, version)
    except LookupError as exc:
        field = "data.dataset_version" if "version" in str(exc) else "data.dataset"
        raise CNNCoreError(str(exc.args[0] if exc.args else exc), field) from exc
    return {"manifest": str(manifest), "dataset_version": version}


def _check_transfer_fits(
    config: TrainConfig, transfer: TransferPlan, replace_head: bool, channels: int, side: int,
    classes: int,
) -> None:  # fmt: skip
    data = config.data
    source_channels, height, width = transfer.input_shape
    if channels != source_channels:
        raise CNNCoreError(
            f"the source network reads {source_channels}-channel images; {data.name} has "
            f"{channels} (set data.channels to {source_channels})", "data.channels",
        )  # fmt: skip
    if height != width:
        raise CNNCoreError(
            f"the source network's input ({height}×{width}) is not square: the pictures "
            "could not be resized to it", transfer.source_field,
        )  # fmt: skip
    _check_resize(data.fit, side, height, data.name)
    if not replace_head and classes != transfer.source_classes:
        raise CNNCoreError(
            f"the source network predicts {transfer.source_classes} classes and this task has "
            f"{classes}: replace the head", "init_from.replace_head",
        )  # fmt: skip


def plan_run(
    body: RunCreate, settings: Settings, checkpoint_of: Callable[[str], Path],
    dataset_of: Callable[..., tuple[Path, int]] | None = None,
    uploaded_of: Callable[[str], WeightsSource] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Check a requested run completely (limits, names, ranges, transfer source and layers)
    and return the config to store. `checkpoint_of(run_id)` finds a run's newest checkpoint
    and raises LookupError when there is none; `dataset_of(dataset_id)` freezes a student's
    dataset's version (current or asked; manifest path, version number), LookupError when it
    cannot; `uploaded_of(name)` is an uploaded model its caller owns, as a source
    (`app.runs.uploaded_source`)."""
    check_run_limits(body, settings)
    values = body.model_dump(exclude={"label", "init_from"})
    values["device"] = values["device"] or settings.device
    if values["data"]["name"] == "user":
        data = values["data"]
        data.update(_user_dataset(data["dataset"], data["dataset_version"], dataset_of))
    elif values["data"]["dataset"] is not None or values["data"]["dataset_version"] is not None:
        raise CNNCoreError("data.dataset goes with data.name 'user'", "data.dataset")
    if values["data"]["name"] in STANDARD_DATASETS:
        if settings.datasets_dir is None:
            raise CNNCoreError(
                f"{values['data']['name']} is read from a local folder, and this server has "
                "none (setting CNNVIZ_DATASETS_DIR); choose a bundled dataset", "data.name",
            )  # fmt: skip
        values["data"]["root"] = str(settings.datasets_dir)
    config = TrainConfig.from_dict(values)
    config.check()
    resolve_device(config.device)  # "cuda" on a server without a GPU: 422 now, not in the worker
    init_from = body.init_from
    if init_from is None:
        check_dataset_fit(config, settings=settings)
        return {**config.to_dict(), "label": body.label, "init_from": None}
    plan, source_file = _plan_source(init_from, config, checkpoint_of, settings, uploaded_of)
    config = plan.config
    _check_source_size(config, plan)
    if config.data.name == "user" and config.data.image_size is None:
        config.data.image_size = plan.input_shape[1]  # read at the source's size, not shrunk
    check_dataset_fit(config, plan, init_from.replace_head, settings,
                      _source_bytes(init_from, source_file))  # fmt: skip
    stored = init_from.model_dump()
    for key, unset in (("weights", None), ("model", None), ("freeze_backbone", False)):
        if stored[key] == unset:  # a run-to-run transfer is stored as it always was
            del stored[key]
    stored["freeze"] = plan.freeze  # the backbone's layers named, as the worker freezes them
    if source_file is not None:  # where the worker reads the weights (a server-made path)
        stored["weights_file"] = source_file
    return {**config.to_dict(), "label": body.label, "init_from": stored}


def _plan_source(
    init_from: InitFrom, config: TrainConfig, checkpoint_of: Callable[[str], Path],
    settings: Settings, uploaded_of: Callable[[str], WeightsSource] | None,
) -> tuple[TransferPlan, str | None]:  # fmt: skip
    """The transfer checked against its source: a run's checkpoint, or bundled, ImageNet or
    uploaded weights (exactly one of `run_id` and `weights`, the latter with its `model`);
    and the weights' file, for the worker."""
    freeze, head, backbone = init_from.freeze, init_from.replace_head, init_from.freeze_backbone
    if (init_from.run_id is None) == (init_from.weights is None):
        raise CNNCoreError("start from a run (init_from.run_id) or from weights "
                           "(init_from.weights), one of the two", "init_from.run_id")  # fmt: skip
    if init_from.run_id is not None:
        try:
            source = checkpoint_of(init_from.run_id)
        except LookupError as exc:
            raise CNNCoreError(str(exc.args[0] if exc.args else exc), "init_from.run_id") from exc
        return plan_transfer(source, config, freeze, head, backbone), None
    if init_from.model is None:
        raise CNNCoreError("name the model whose weights to start from", "init_from.model")
    if init_from.weights == "uploaded":
        if uploaded_of is None:
            raise CNNCoreError("this server keeps no uploaded models", "init_from.model")
        weights = uploaded_of(init_from.model)
    else:
        weights = weights_source(init_from.weights, init_from.model,
                                 imagenet_dir=settings.weights_dir)  # fmt: skip
    plan = plan_transfer_from(weights.config, weights.trained, config, freeze, head, backbone,
                              source_field="init_from.model")  # fmt: skip
    return plan, weights.path


def _source_bytes(init_from: InitFrom, source_file: str | None) -> int:
    """What the worker holds converting an uploaded ONNX file again: ~3 × the file (its bytes,
    the parsed protobuf, the weights read from it; app/uploaded_models.py)."""
    if init_from.weights != "uploaded" or not str(source_file).endswith(".onnx"):
        return 0
    return CONVERSION_COPIES * Path(source_file).stat().st_size


def _check_source_size(config: TrainConfig, plan: TransferPlan) -> None:
    """A transfer run reads images at its source's size: another size asked for cannot be."""
    side = config.data.image_size
    _, height, width = plan.input_shape
    if side is not None and config.data.name != "shapes" and (side, side) != (height, width):
        raise CNNCoreError(
            f"the source network reads {height}×{width} images; data.image_size {side} does "
            f"not fit it (leave it empty, or set {height})", "data.image_size",
        )  # fmt: skip
