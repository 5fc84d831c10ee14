"""Where a transfer run's backbone comes from when it is not another run: weights files.

A run can start (`cnncore.transfer`) from a finished run's checkpoint, or from
- ``bundled``: the small trained models shipped in `weights/` (`cnncore.weights`: LeNet-5 and
  the MLP on MNIST digits, TinyVGG on generated shapes), named by their zoo model, and the
  bundled backbones kept only as transfer sources, named by their file (`tinyvgg_colour`:
  TinyVGG on generated colour things, `cnncore.weights.bundled_backbones`), or
- ``imagenet``: torchvision's published ImageNet-1k weights once `cnnviz weights get` has
  installed them in the data folder (`cnncore.pretrained`).

- ``uploaded``: a model a user uploaded (`cnncore.uploaded`): an ONNX file, converted again
  from its bytes in the worker and made a classifier (`cnncore.uploaded_transfer`), or a state
  dict for a zoo architecture, read like the files above (`uploaded_trained` gives its facts).

Each becomes a `Checkpoint` (network, architecture config, `TrainedMetadata` with the input
shape, class names and normalisation the weights were trained with), so the rest of a transfer
— new head, frozen layers, images resized to the source's input — is the same code whatever
the source. The network is rebuilt with `build_classifier`, the builder every run uses, so a
transfer run's own checkpoints load back exactly like any run's; a weights file whose tensors
do not fit that network is refused naming the field (`init_from.model`).

Yosinski et al. (2014), "How transferable are features in deep neural networks?", for why the
first layers carry over; Kornblith et al. (2019), "Do Better ImageNet Models Transfer
Better?", for ImageNet backbones as the usual starting point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cnncore.checkpoint import Checkpoint
from cnncore.errors import CNNCoreError
from cnncore.imagenet import NUM_CLASSES, class_names
from cnncore.model_options import build_classifier
from cnncore.models import list_models
from cnncore.pretrained import IMAGENET_RECIPE, installed_path, read_installed, torchvision_layout
from cnncore.training import TrainConfig
from cnncore.transfer import ARCHITECTURE_FIELDS
from cnncore.uploaded import UploadedSpec, uploaded_weights
from cnncore.uploaded_transfer import as_classifier
from cnncore.weights import WEIGHTS_DIR, TrainedMetadata, bundled_backbones, read_weights

__all__ = [
    "SOURCE_KINDS",
    "WeightsSource",
    "load_weights_source",
    "uploaded_checkpoint",
    "uploaded_trained",
    "weights_source",
]

SOURCE_KINDS = ("bundled", "imagenet")
FIELD = "init_from.model"


@dataclass(frozen=True)
class WeightsSource:
    """What a weights file is, read from its metadata alone (no tensors)."""

    kind: str  # bundled | imagenet | uploaded
    model: str  # as a run names it: a zoo model, or a bundled backbone's name (tinyvgg_colour)
    path: str
    config: TrainConfig  # the zoo model and architecture switches the weights were trained with
    trained: TrainedMetadata


def _bundled(model: str, directory: Path) -> WeightsSource:
    """A zoo model's bundled file (`lenet5`), or a bundled backbone (`tinyvgg_colour`), whose
    network is the zoo model its metadata names."""
    backbones = bundled_backbones(directory)
    path = directory / f"{model}.safetensors"
    if model not in backbones and (model not in list_models() or not path.is_file()):
        offered = sorted(n for n in list_models() if (directory / f"{n}.safetensors").is_file())
        raise CNNCoreError(f"{model} ships no trained weights; choose one of "
                           f"{', '.join([*offered, *backbones])}", FIELD)  # fmt: skip
    _, meta = read_weights(path)
    if not meta.labels:
        raise CNNCoreError(f"{model}'s bundled weights are not a classifier's", FIELD)
    options = meta.options or {}
    unknown = set(options) - set(ARCHITECTURE_FIELDS) | ({"model"} & set(options))
    if unknown:
        raise CNNCoreError(f"{model}'s bundled weights need a model option a run cannot "
                           f"rebuild: {sorted(unknown)[0]}", FIELD)  # fmt: skip
    config = TrainConfig(model=meta.model, **options)
    return WeightsSource("bundled", model, str(path), config, meta)


def _imagenet(model: str, directory: Path | None) -> WeightsSource:
    try:
        path = installed_path(directory, model) if directory is not None else None
    except CNNCoreError as exc:  # not a zoo model
        raise CNNCoreError(str(exc), FIELD) from exc
    if path is None or not path.is_file():
        raise CNNCoreError(
            f"{model} has no ImageNet weights here: `cnnviz weights get {model}` installs them",
            FIELD,
        )
    meta = read_installed(path)
    if meta.config:  # e.g. googlenet's transform_input: not a network a run can rebuild
        raise CNNCoreError(f"{model}'s ImageNet weights need model options a run cannot "
                           "rebuild; choose resnet18 or mobilenet_v2", FIELD)  # fmt: skip
    recipe = meta.preprocessing or IMAGENET_RECIPE
    side = int(recipe["crop"])
    trained = TrainedMetadata(
        model=model,
        config={"in_channels": 3, "num_classes": NUM_CLASSES, "input_size": (side, side)},
        input_shape=(3, side, side),
        dataset=meta.labels or "imagenet-1k",
        labels=class_names("en"),
        mean=tuple(recipe["mean"]),
        std=tuple(recipe["std"]),
        metric="accuracy",
        score=(meta.top1 or float("nan")) / 100,
        epochs=0,
        seed=0,
        train_size=0,
        val_size=0,
    )
    return WeightsSource("imagenet", model, str(path), TrainConfig(model=model), trained)


def weights_source(
    kind: str, model: str, *, imagenet_dir: Path | None, bundled_dir: Path = WEIGHTS_DIR
) -> WeightsSource:
    """The source named by `kind` and `model`, checked from its metadata (the API plans a run
    with this before any tensor is read); refusals name `init_from.model`."""
    if kind not in SOURCE_KINDS:
        raise CNNCoreError(f"weights must be one of {', '.join(SOURCE_KINDS)}", "init_from.weights")
    return _bundled(model, bundled_dir) if kind == "bundled" else _imagenet(model, imagenet_dir)


def load_weights_source(source: WeightsSource, device: str = "cpu") -> Checkpoint:
    """The source's network with its weights, as a `Checkpoint` the transfer code takes."""
    state = load_file(source.path)
    if source.kind == "imagenet":
        state = torchvision_layout(source.model, state)
    trained, config = source.trained, source.config
    model = build_classifier(
        config.model, trained.input_shape, len(trained.labels), activation=config.activation,
        batch_norm=config.batch_norm, dropout=config.dropout, width=config.width,
    )  # fmt: skip
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CNNCoreError(
            f"the {source.kind} weights of {source.model} do not fit the network a run builds: "
            f"{str(exc).splitlines()[0]}", FIELD,
        ) from exc  # fmt: skip
    progress = {"epoch": trained.epochs, "source": source.kind}
    return Checkpoint(model.to(torch.device(device)).eval(), source.config, trained, progress,
                      Path(source.path).name)  # fmt: skip


def uploaded_trained(spec: UploadedSpec, model: str) -> TrainedMetadata:
    """What an uploaded model was made for, as a source's facts: its fixed input, its classes
    (its labels, or their numbers), the normalisation its pictures are given on the pages
    (`cnncore.uploaded.uploaded_weights`). `model` is the name the run's network is built by."""
    classes = spec.num_classes
    if classes is None:
        shape = "×".join(map(str, spec.output_shape))
        raise CNNCoreError(f"{spec.title!r} is not a classifier: its output is {shape}, not one "
                           "score per class", FIELD, code="no_output_layer")  # fmt: skip
    facts = uploaded_weights(spec)
    channels, height, width = spec.input_shape
    return TrainedMetadata(
        model=model,
        config={"in_channels": channels, "num_classes": classes, "input_size": (height, width)},
        input_shape=spec.input_shape,
        dataset="uploaded",
        labels=facts.labels or tuple(str(i) for i in range(classes)),
        mean=tuple(facts.mean),
        std=tuple(facts.std),
        metric="accuracy",
        score=float("nan"),
        epochs=0,
        seed=0,
        train_size=0,
        val_size=0,
    )


def uploaded_checkpoint(network: nn.Module, trained: TrainedMetadata, title: str) -> Checkpoint:
    """A converted ONNX network (changed in place: ending at its head) as a source `Checkpoint`."""
    model = as_classifier(network, len(trained.labels)).eval()
    return Checkpoint(model, TrainConfig(model=trained.model), trained,
                      {"epoch": 0, "source": "uploaded"}, title)  # fmt: skip
