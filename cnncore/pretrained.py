"""Published ImageNet weights as a managed resource: which file each zoo model can have, how a
torchvision state dict becomes ours, where it is kept and how a model is built with it.

The six zoo models torchvision publishes ImageNet-1k weights for (alexnet, vgg16, resnet18,
resnet50, googlenet, mobilenet_v2) have exactly torchvision's parameter names and shapes, so a
published file loads strictly after two documented adjustments (`torchvision_layout`):
- googlenet: the file carries the auxiliary classifiers `aux1.*`, `aux2.*` (used in training
  only; torchvision drops them after loading, `models/googlenet.py`), and its weights expect
  `transform_input=True` (see `cnncore.models.googlenet.InputTransform`);
- mobilenet_v2: our names are torchvision's; files saved by cnnviz before they were (the
  projection as `conv.K.0`/`conv.K.1` instead of `conv.K`/`conv.K+1`) are renamed.

Catalogue: torchvision 0.28's `IMAGENET1K_V1` weights of each model (URL, published acc@1 and
acc@5 on the ImageNet-1k validation set, torchvision's `Weights.meta["_metrics"]`). V1 is the
entry evaluated with the classic recipe — resize the shorter side to 256, centre-crop 224,
normalise with ImageNet's mean and std (`ImageClassification(crop_size=224)`) — the recipe the
page shows; torchvision's newer V2 files use other resize sizes.

Files live in `<data folder>/weights/<model>.safetensors` (no pickle when they are read; the
tensors are memory-mapped), with their provenance as safetensors metadata. Writing one goes
through a temporary file in the same folder and `os.replace`, so a reader sees the old file or
the new one, never half of one. Downloading and importing are in `cnncore.pretrained_files`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.imagenet import NUM_CLASSES, class_names
from cnncore.models import build_model, get_model_info, list_models
from cnncore.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHTS_DIR,
    LoadedModel,
    WeightsInfo,
    bundled_backbones,
    load_model,
    read_metadata,
)

__all__ = [
    "CHOICES",
    "IMAGENET_LABELS",
    "IMAGENET_RECIPE",
    "PUBLISHED",
    "PUBLISHED_CONFIG",
    "InstalledWeights",
    "ModelWeights",
    "PublishedWeights",
    "WeightsLayoutError",
    "WeightsUnavailableError",
    "check_layout",
    "installed",
    "installed_path",
    "load_pretrained",
    "remove_weights",
    "torchvision_layout",
    "weights_overview",
    "write_weights",
]

# The weights a page or a caller may ask for; "auto" takes the best one present.
CHOICES = ("auto", "bundled", "imagenet", "initialisation")
IMAGENET_LABELS = "imagenet-1k"  # the class list the 1000 outputs follow (torchvision's order)
# torchvision's `ImageClassification(crop_size=224)`: Resize(256, bilinear, antialias) →
# CenterCrop(224) → [0, 1] → Normalize(mean, std)
IMAGENET_RECIPE = {
    "resize": 256,
    "crop": 224,
    "interpolation": "bilinear",
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub's rule for the digest prefix


@dataclass(frozen=True)
class PublishedWeights:
    """One file torchvision publishes, with the accuracy it reports for it."""

    model: str
    url: str
    top1: float  # ImageNet-1k validation, single 224 crop, percent
    top5: float
    params: int
    recipe: str  # how it was trained (torchvision's references)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """The digest prefix torchvision puts in the file name (torch.hub checks it too)."""
        found = _HASH_IN_NAME.search(self.file_name)
        assert found is not None, self.file_name
        return found.group(1)


_BASE = "https://download.pytorch.org/models/"
_REFERENCES = "https://github.com/pytorch/vision/tree/main/references/classification"
PUBLISHED: dict[str, PublishedWeights] = {
    w.model: w
    for w in (
        PublishedWeights("alexnet", _BASE + "alexnet-owt-7be5be79.pth", 56.522, 79.066,
                         61_100_840, _REFERENCES + "#alexnet-and-vgg"),
        PublishedWeights("vgg16", _BASE + "vgg16-397923af.pth", 71.592, 90.382,
                         138_357_544, _REFERENCES + "#alexnet-and-vgg"),
        PublishedWeights("resnet18", _BASE + "resnet18-f37072fd.pth", 69.758, 89.078,
                         11_689_512, _REFERENCES + "#resnet"),
        PublishedWeights("resnet50", _BASE + "resnet50-0676ba61.pth", 76.13, 92.862,
                         25_557_032, _REFERENCES + "#resnet"),
        PublishedWeights("googlenet", _BASE + "googlenet-1378be20.pth", 69.778, 89.53,
                         6_624_904, _REFERENCES + "#googlenet"),
        PublishedWeights("mobilenet_v2", _BASE + "mobilenet_v2-b0353104.pth", 71.878, 90.286,
                         3_504_872, _REFERENCES + "#mobilenetv2"),
    )
}  # fmt: skip
# Model options the published weights need (torchvision builds googlenet so for them).
PUBLISHED_CONFIG: dict[str, dict[str, Any]] = {"googlenet": {"transform_input": True}}


class WeightsLayoutError(CNNCoreError):
    """A state dict whose names or shapes are not the model's."""

    code = "weights_layout"


class WeightsUnavailableError(CNNCoreError):
    """Weights asked for by name that this installation does not have."""

    code = "weights_unavailable"


@dataclass(frozen=True)
class InstalledWeights:
    """What an installed file says about itself (its safetensors metadata)."""

    model: str
    source: str  # imagenet (torchvision's published file) | imported (a file added by hand)
    url: str | None  # where it was downloaded from
    original_file: str  # the file it was made from
    sha256: str  # full digest of that original file
    labels: str | None  # IMAGENET_LABELS when the outputs are ImageNet-1k's classes
    preprocessing: dict[str, Any]
    top1: float | None  # published accuracy (None: not torchvision's published file)
    top5: float | None
    config: dict[str, Any]  # model options the weights need (googlenet's transform_input)
    installed: str  # ISO time
    file: str = ""  # the installed file's name (filled when read)
    size: int = 0  # its size in bytes (filled when read)


def torchvision_layout(name: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision state dict in our model's names (see the module docstring)."""
    state = dict(state)
    if name == "googlenet":
        state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    if name == "mobilenet_v2":
        state = {_mobilenet_v2_name(k, state): v for k, v in state.items()}
    return state


_OLD_PROJECTION = re.compile(r"^(features\.\d+\.conv)\.(\d+)\.([01])\.(.+)$")


def _mobilenet_v2_name(key: str, state: Mapping[str, Any]) -> str:
    """cnnviz's earlier `features.N.conv.K.0/1.*` projection names → torchvision's
    `conv.K.*` / `conv.K+1.*`; the expand and depthwise `conv.J.0/1` stay as they are."""
    found = _OLD_PROJECTION.match(key)
    if found is None:
        return key
    block, k, inner, rest = found.group(1), int(found.group(2)), found.group(3), found.group(4)
    if f"{block}.{k + 1}.0.weight" in state or f"{block}.{k + 1}.weight" in state:
        return key  # a later layer exists: this is an expand or depthwise conv
    return f"{block}.{k + int(inner)}.{rest}"


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


def check_layout(name: str, state: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Refuse a state dict whose keys or shapes differ from the model's, listing every
    missing, unexpected and mismatched key (a strict `load_state_dict` says the same, later)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: file {_shape(state[k])}, model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if _shape(state[k]) != tuple(expected[k].shape)
    )
    if not (missing or unexpected or mismatched):
        return
    lines = [f"this file's layers are not {name}'s:"]
    for title, keys in (("missing", missing), ("unexpected", unexpected),
                        ("wrong shape", mismatched)):  # fmt: skip
        if keys:
            shown = ", ".join(keys[:8]) + (f" … ({len(keys) - 8} more)" if len(keys) > 8 else "")
            lines.append(f"  {title} ({len(keys)}): {shown}")
    raise WeightsLayoutError(
        "\n".join(lines),
        "file",
        ctx={"model": name, "missing": len(missing), "unexpected": len(unexpected),
             "mismatched": len(mismatched)},
    )  # fmt: skip


def installed_path(directory: Path, name: str) -> Path:
    """Where `name`'s ImageNet weights live under the data folder's weights directory."""
    get_model_info(name)  # an unknown name is refused before it becomes a path
    return directory / f"{name}.safetensors"


def write_weights(directory: Path, name: str, state: Mapping[str, torch.Tensor],
                  meta: InstalledWeights) -> Path:  # fmt: skip
    """Write atomically: a temporary file in the same folder, then `os.replace`. On any error
    the temporary file is removed and an earlier file stays as it was."""
    directory.mkdir(parents=True, exist_ok=True)
    final = installed_path(directory, name)
    fields = {k: json.dumps(v) for k, v in asdict(meta).items() if k not in ("file", "size")}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=fields)
        os.replace(temporary, final)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return final


def read_installed(path: Path) -> InstalledWeights:
    """The metadata of an installed file (its tensors are not read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        values = {k: json.loads(v) for k, v in raw.items() if k in InstalledWeights.__annotations__}
        return InstalledWeights(**values, file=path.name, size=path.stat().st_size)
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise CNNCoreError(f"weights file {path.name} cannot be read: {exc}", "model") from exc


def installed(directory: Path) -> dict[str, InstalledWeights]:
    """Every zoo model's installed ImageNet weights, by model name (unreadable files skipped)."""
    found = {}
    for name in list_models():
        path = directory / f"{name}.safetensors"
        if path.is_file():
            try:
                found[name] = read_installed(path)
            except CNNCoreError:
                continue
    return found


def remove_weights(directory: Path, name: str) -> bool:
    """Delete `name`'s installed weights; False when there were none."""
    path = installed_path(directory, name)
    if not path.is_file():
        return False
    path.unlink()
    return True


def build_with(name: str, state: Mapping[str, torch.Tensor], config: dict[str, Any]) -> nn.Module:
    """The model with these tensors as its parameters: built on the meta device (no time spent
    drawing an initialisation that is overwritten at once), checked, then the tensors assigned."""
    model = build_model(name, device="meta", **config)
    check_layout(name, state, model)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _labels(labels: str | None, classes: int) -> tuple[str, ...] | None:
    """The class names an installed file's outputs follow: ImageNet-1k's (English; the page
    names them in its language, `cnncore.imagenet.class_names`), else none (no predictions)."""
    if labels == IMAGENET_LABELS and classes == NUM_CLASSES:
        return class_names("en")
    return None


def _imagenet_model(name: str, directory: Path, device: torch.device | str) -> LoadedModel:
    path = installed_path(directory, name)
    meta = read_installed(path)
    state = load_file(str(path))  # memory-mapped read: no pickle, no copy through Python
    model = build_with(name, state, meta.config)
    recipe = meta.preprocessing or IMAGENET_RECIPE
    classes = get_model_info(name).num_classes or 0
    weights = WeightsInfo(
        source=meta.source,
        input_shape=(3, recipe["crop"], recipe["crop"]),
        mean=tuple(recipe["mean"]),
        std=tuple(recipe["std"]),
        resize_ratio=recipe["resize"] / recipe["crop"],
        labels=_labels(meta.labels, classes),
        file=path.name,
        pretrained=meta,
    )
    return LoadedModel(name, model.to(device), weights)


def load_pretrained(
    name: str,
    choice: str = "auto",
    *,
    directory: Path | None = None,
    bundled: Path = WEIGHTS_DIR,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """A zoo model in eval mode with the weights asked for, and what they are.

    `choice`: ``auto`` (bundled weights, else installed ImageNet weights, else the seeded
    initialisation), ``bundled``, ``imagenet`` (installed under `directory`, the data folder's
    weights directory) or ``initialisation``. Weights asked for by name that are not there raise
    `WeightsUnavailableError` naming `weights`.
    """
    if choice not in CHOICES:
        raise CNNCoreError(f"weights must be one of {', '.join(CHOICES)}", "weights")
    if get_model_info(name).uploaded is not None:
        from cnncore.uploaded import load_uploaded  # its own weights, whatever `choice` says

        return load_uploaded(name, device)
    has_bundled = (bundled / f"{name}.safetensors").is_file()
    has_imagenet = directory is not None and (directory / f"{name}.safetensors").is_file()
    if choice == "auto":
        choice = "bundled" if has_bundled else "imagenet" if has_imagenet else "initialisation"
    if choice == "imagenet":
        if not has_imagenet:
            command = f"cnnviz weights get {name}"
            raise WeightsUnavailableError(
                f"{name} has no ImageNet weights here: `{command}` downloads them",
                "weights",
                ctx={"model": name, "command": command},
            )
        return _imagenet_model(name, directory, device)  # type: ignore[arg-type]
    if choice == "bundled" and not has_bundled:
        raise WeightsUnavailableError(
            f"{name} ships no trained weights", "weights", ctx={"model": name, "command": ""}
        )
    return load_model(name, directory=bundled, use_bundled=choice == "bundled", device=device)


@dataclass(frozen=True)
class ModelWeights:
    """Everything one zoo model can run with here, for `cnnviz weights list` and the API."""

    model: str
    chosen: str  # what `auto` picks now: bundled | imagenet | imported | initialisation
    bundled: str | None  # the bundled file's name
    bundled_size: int | None
    bundled_sha256: str | None
    installed: InstalledWeights | None
    published: PublishedWeights | None  # what `cnnviz weights get` would download
    command: str | None  # the command that gets the missing published weights
    # bundled backbones of this model, kept only as transfer sources: (file name, bytes,
    # SHA-256, the run options its metadata records: batch_norm, width… or None)
    backbones: tuple[tuple[str, int, str, dict[str, Any] | None], ...] = ()
    bundled_options: dict[str, Any] | None = None  # the bundled file's recorded run options


@lru_cache(maxsize=64)
def _sha256_of(path: Path, _version: tuple[int, int]) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _file_sha256(path: Path) -> str:
    """A bundled file's digest (a few MB at most), computed again only when the file changes."""
    stat = path.stat()
    return _sha256_of(path, (stat.st_mtime_ns, stat.st_size))


def weights_overview(directory: Path, bundled: Path = WEIGHTS_DIR) -> list[ModelWeights]:
    """Per zoo model, in the registry's order: its bundled file, its installed ImageNet file,
    the published file it could have, and which one `auto` uses."""
    found = installed(directory)
    backbones: dict[str, list[tuple[str, int, str, dict[str, Any] | None]]] = {}
    for path in bundled_backbones(bundled).values():
        meta = read_metadata(path)
        backbones.setdefault(meta.model, []).append(
            (path.name, path.stat().st_size, _file_sha256(path), meta.options)
        )
    rows = []
    for name in list_models():
        path = bundled / f"{name}.safetensors"
        has_bundled = path.is_file()
        mine = found.get(name)
        published = PUBLISHED.get(name)
        chosen = "bundled" if has_bundled else mine.source if mine else "initialisation"
        missing = published is not None and (mine is None or mine.source != "imagenet")
        rows.append(ModelWeights(
            name, chosen, path.name if has_bundled else None,
            path.stat().st_size if has_bundled else None,
            _file_sha256(path) if has_bundled else None, mine, published,
            f"cnnviz weights get {name}" if missing else None, tuple(backbones.get(name, ())),
            read_metadata(path).options if has_bundled else None,
        ))  # fmt: skip
    return rows
