"""Which weights a zoo model runs with, and loading them without ever unpickling user data.

Where weights come from, always said plainly on the page:
- ``trained``: the small models (`lenet5`, `tinyvgg`, `autoencoder`, `mlp`) ship safetensors files
  in `weights/`, written by `scripts/train_small_models.py` (seeded, on bundled data). The file's
  metadata records the dataset, the build config, the class names, the input normalisation and
  the held-out score, so the picture preprocessing matches what the network was trained on.
  A bundled file whose name is not a zoo model's (`tinyvgg_colour`) is a backbone kept only as
  a transfer source (`bundled_backbones`, `cnncore.transfer_sources`); no page runs it.
- ``imagenet`` / ``imported``: torchvision's published ImageNet weights installed in the data
  folder by `cnnviz weights get`, or a file added with `cnnviz weights add` (`cnncore.pretrained`).
- ``initialisation``: everything else runs with its initialisation, drawn from a fixed seed so the
  same picture shows the same maps after a restart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.models import get_model, get_model_info, list_models
from cnncore.seeding import seeded

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INITIALISATION_SEED",
    "WEIGHTS_DIR",
    "LoadedModel",
    "TrainedMetadata",
    "WeightsInfo",
    "bundled_backbones",
    "initialisation_weights",
    "load_model",
    "read_metadata",
    "read_weights",
    "save_weights",
]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
INITIALISATION_SEED = 0
# torchvision's ImageNet statistics, the normalisation its reference weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainedMetadata:
    """What a bundled weights file says about itself (stored as safetensors string metadata)."""

    model: str
    config: dict[str, Any]  # keyword arguments of `get_model` (input_size, num_classes ...)
    input_shape: tuple[int, int, int]  # C, H, W the network was trained at
    dataset: str
    labels: tuple[str, ...] | None  # None: not a classifier
    mean: tuple[float, ...]
    std: tuple[float, ...]
    metric: str  # "accuracy" (classifiers) or "mse" (the autoencoder's reconstruction error)
    score: float  # on the held-out validation split
    epochs: int
    seed: int
    train_size: int
    val_size: int
    # a classifier's training-data statistics for the familiarity score (cnncore.familiarity)
    familiarity: dict[str, Any] | None = None
    # the run's architecture switches the weights need beyond the zoo model (TrainConfig's
    # batch_norm, width…; `cnncore.transfer.ARCHITECTURE_FIELDS`): a transfer rebuilds them
    options: dict[str, Any] | None = None


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from and how its input must be prepared."""

    source: str  # trained | state_dict | initialisation
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_ratio: float  # shorter side = ratio · crop side (256/224 for ImageNet models)
    labels: tuple[str, ...] | None  # known class names: predictions are meaningful
    trained: TrainedMetadata | None = None
    file: str | None = None  # file name (never a full path: it is shown to users)
    pretrained: Any = None  # cnncore.pretrained.InstalledWeights of an installed ImageNet file


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model: nn.Module
    weights: WeightsInfo


def save_weights(model: nn.Module, path: Path, metadata: TrainedMetadata) -> None:
    """Write the state dict and its metadata as safetensors (tensors made contiguous)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fields = {k: json.dumps(v) for k, v in asdict(metadata).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=fields)


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], TrainedMetadata]:
    """Tensors and metadata of a bundled weights file (safetensors: no code can run)."""
    metadata = read_metadata(path)
    try:
        return load_file(str(path)), metadata
    except (SafetensorError, OSError) as exc:
        raise CNNCoreError(f"weights file {path.name} cannot be read: {exc}", "model") from exc


def read_metadata(path: Path) -> TrainedMetadata:
    """A bundled weights file's metadata alone (its header: no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        values = {k: json.loads(v) for k, v in raw.items()}
        values["input_shape"] = tuple(values["input_shape"])
        values["labels"] = tuple(values["labels"]) if values["labels"] is not None else None
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        # JSON has no tuples; factories take (height, width) pairs
        values["config"] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values["config"].items()
        }
        return TrainedMetadata(**values)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        raise CNNCoreError(f"weights file {path.name} cannot be read: {exc}", "model") from exc


def bundled_backbones(directory: Path = WEIGHTS_DIR) -> dict[str, Path]:
    """Bundled files kept only as transfer sources, by name: `<name>.safetensors` whose name is
    not a zoo model's (so no page runs it as that model) and whose metadata names a zoo
    classifier (`tinyvgg_colour`: TinyVGG pretrained on generated colour things). Sorted."""
    found = {}
    models = set(list_models())
    for path in sorted(directory.glob("*.safetensors")):
        if path.stem in models:
            continue
        meta = read_metadata(path)
        if meta.model in models and meta.labels:
            found[path.stem] = path
    return found


def _initialised(name: str, config: dict[str, Any]) -> nn.Module:
    with seeded(INITIALISATION_SEED):
        return get_model(name, **config)


def initialisation_weights(name: str) -> WeightsInfo:
    """How a picture is prepared for a zoo model without trained weights: its default input,
    torchvision's ImageNet recipe for colour models (256/224 resize for the 224 ones), mean and
    std 0.5 for grey ones."""
    default = get_model_info(name).default_input.as_tuple()
    colour = default[0] == 3
    return WeightsInfo(
        source="initialisation",
        input_shape=default,
        mean=IMAGENET_MEAN if colour else (0.5,) * default[0],
        std=IMAGENET_STD if colour else (0.5,) * default[0],
        resize_ratio=256 / 224 if default[1] >= 224 else 1.0,
        labels=None,
    )


def load_model(
    name: str,
    *,
    directory: Path = WEIGHTS_DIR,
    use_bundled: bool = True,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Build a zoo model in eval mode with its bundled weights (`directory/<name>.safetensors`)
    when it has some and `use_bundled`, else the seeded initialisation. Unknown names raise
    `UnknownModelError` (field `model`). ImageNet weights: `cnncore.pretrained.load_pretrained`.
    """
    bundled = directory / f"{name}.safetensors"
    if use_bundled and bundled.is_file():
        tensors, meta = read_weights(bundled)
        model = _initialised(name, meta.config)
        model.load_state_dict(tensors, strict=True)
        weights = WeightsInfo(
            "trained", meta.input_shape, meta.mean, meta.std, 1.0, meta.labels, meta, bundled.name
        )
    else:
        model = _initialised(name, {})
        weights = initialisation_weights(name)
    return LoadedModel(name, model.to(device).eval(), weights)
