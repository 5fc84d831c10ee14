"""The pictures the familiarity score is fitted and measured on, built the same way every time.

In-distribution: the bundled dataset a model was trained on, split exactly as its training split
it (`TrainedMetadata` records dataset, seed and sizes). The score's statistics come from the
training split; the validation split is dealt alternately into two halves: the even positions
choose the threshold, the odd ones measure it (so the threshold is never judged on the pictures
that chose it). Outliers, per model (`OUTLIER_SETS`):

- `photos`: square crops of scikit-learn's two sample photos (china.jpg, flower.jpg, 427×640), a
  side of 20–100 % of the shorter side at a random place, half from each photo;
- `noise`: uniform random pixels at the model's input size, half in colour, half grey;
- the other bundled datasets: generated `shapes` for the MNIST models, and `mnist5k` digits and
  scikit-learn's 8×8 `digits` for the shapes model. scikit-learn's digits are not outliers for
  the MNIST models: they are digits too, just coarser.

Every picture is 8-bit RGB (`DecodedImage`), so it reaches the network through the page's own
preprocessing (resize, crop, grey conversion, normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnncore.data import DataConfig, DataSplit, load_dataset, load_images
from cnncore.datasets.shapes import generate_shapes
from cnncore.familiarity import picture_of
from cnncore.images import DecodedImage
from cnncore.weights import TrainedMetadata

__all__ = [
    "OUTLIER_SETS",
    "HeldOut",
    "auroc",
    "held_out",
    "outlier_pictures",
    "training_config",
]

OUTLIER_SETS: dict[str, tuple[str, ...]] = {
    "tinyvgg": ("photos", "noise", "mnist5k", "digits"),
    "lenet5": ("photos", "noise", "shapes"),
    "mlp": ("photos", "noise", "shapes"),
}
_SHAPES_SIDE = 64  # the side the shapes model was trained at


@dataclass(frozen=True)
class HeldOut:
    """A model's training split as pictures: the training ones and two halves of held-out ones."""

    split: DataSplit

    @property
    def train(self) -> list[DecodedImage]:
        return [picture_of(image) for image in self.split.train_images]

    @property
    def train_labels(self) -> torch.Tensor:
        return self.split.train_labels

    @property
    def threshold(self) -> list[DecodedImage]:
        """Even positions of the validation split: they choose the threshold."""
        return [picture_of(image) for image in self.split.val_images[0::2]]

    @property
    def evaluation(self) -> list[DecodedImage]:
        """Odd positions: they measure it."""
        return [picture_of(image) for image in self.split.val_images[1::2]]


def training_config(meta: TrainedMetadata) -> DataConfig:
    """The data settings that give the training run's split, at the pictures' native size."""
    if meta.dataset == "shapes":
        return DataConfig(
            name="shapes",
            image_size=meta.input_shape[-1],
            shapes_count=meta.train_size + meta.val_size,
            seed=meta.seed,
        )
    return DataConfig(name=meta.dataset, seed=meta.seed)


def held_out(meta: TrainedMetadata) -> HeldOut:
    return HeldOut(load_dataset(training_config(meta)))


def _photo_crops(count: int, rng: np.random.Generator) -> list[DecodedImage]:
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image(f"{name}.jpg") for name in ("china", "flower")]
    crops = []
    for i in range(count):
        photo = photos[i % 2]
        height, width, _ = photo.shape
        side = int(rng.uniform(0.2, 1.0) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = np.ascontiguousarray(photo[top : top + side, left : left + side])
        crops.append(DecodedImage(crop, "JPEG", "RGB", 1))
    return crops


def _noise(count: int, side: int, rng: np.random.Generator) -> list[DecodedImage]:
    pictures = []
    for i in range(count):
        channels = 3 if i % 2 == 0 else 1
        pixels = rng.integers(0, 256, (side, side, channels), dtype=np.uint8)
        pixels = np.ascontiguousarray(np.broadcast_to(pixels, (side, side, 3)))
        pictures.append(DecodedImage(pixels, "PNG", "RGB", 1))
    return pictures


def outlier_pictures(kind: str, count: int, side: int, seed: int = 0) -> list[DecodedImage]:
    """`count` pictures of one outlier set (`photos`, `noise`, `shapes`, `mnist5k`, `digits`);
    `side` is the model's input side (noise is drawn at it, so no resize smooths it)."""
    rng = np.random.default_rng(seed)
    if kind == "photos":
        return _photo_crops(count, rng)
    if kind == "noise":
        return _noise(count, side, rng)
    if kind == "shapes":
        # a seed no training run used: new shapes, never seen
        images, _labels, _names = generate_shapes(count, _SHAPES_SIDE, seed=seed + 1000)
    else:
        images, _labels, _names = load_images(DataConfig(name=kind))
        pick = torch.from_numpy(rng.permutation(len(images))[:count].copy())
        images = images[pick]
    return [picture_of(image) for image in images]


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """Area under the ROC curve of telling `outside` (positive) from `inside` by a larger score:
    the probability that a random outsider scores above a random insider (ties count half)."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(truth, np.r_[inside.numpy(), outside.numpy()]))
