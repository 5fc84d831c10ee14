"""A trained run's held-out pictures, each with the prediction its network makes of it.

The validation split a run held out (`cnncore.data.split_dataset`, stratified by the data seed)
is made again from the run's own data config, at the size its network reads (the trainer's
`resize_split`, the same call a run makes), and sent through the checkpoint's network in
inference mode, normalised with the statistics the run trained with (the checkpoint's
`TrainedMetadata`). So the confusion matrix computed here is the run's own: for the final
checkpoint of a run that did not restore an earlier epoch it equals the last `epoch` event's
matrix, cell for cell, and each cell can list the pictures it counts.

Rows are true classes, columns predicted ones (scikit-learn's convention, as
`cnncore.metrics.confusion_matrix`); per-class accuracy is a row's diagonal over its sum
(the recall of that class), None for a class with no held-out picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.data import DataConfig, DataSplit, load_dataset, resize_split
from cnncore.metrics import confusion_matrix
from cnncore.training import plain_json
from cnncore.weights import TrainedMetadata

__all__ = ["HeldOut", "held_out_data", "held_out_predictions"]

_BATCH = 256


@dataclass(frozen=True)
class HeldOut:
    """The held-out split of a run and its network's answer for each picture."""

    class_names: list[str]
    train_counts: list[int]  # pictures per class the run learnt from
    val_counts: list[int]  # pictures per class it held out
    labels: list[int]  # true class of each held-out picture, in validation order
    predicted: list[int]
    # softmax probability of the predicted class; None where the network's output is not finite
    # (a run that diverged: strict JSON has no NaN)
    confidence: list[float | None]
    confusion: list[list[int]]  # [true][predicted]
    per_class_accuracy: list[float | None]
    accuracy: float

    def cell(self, true: int, predicted: int) -> list[int]:
        """Indices of the held-out pictures of class `true` predicted as `predicted`."""
        return [
            i for i, (t, p) in enumerate(zip(self.labels, self.predicted, strict=True))
            if t == true and p == predicted
        ]  # fmt: skip


def held_out_data(data: DataConfig, trained: TrainedMetadata, fit: str = "scale") -> DataSplit:
    """The run's split again, its images at the size the network reads."""
    split = load_dataset(data)
    channels, height, width = trained.input_shape
    if split.input_shape[1:] != (height, width):
        split = resize_split(split, height, fit)
    return split


@torch.no_grad()
def held_out_predictions(model: nn.Module, split: DataSplit, trained: TrainedMetadata) -> HeldOut:
    """Every held-out picture through `model` (eval mode), normalised as the run trained."""
    model.eval()
    device = next(model.parameters()).device
    mean = torch.tensor(trained.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(trained.std, device=device).view(1, -1, 1, 1)
    probs = []
    for start in range(0, len(split.val_labels), _BATCH):
        images = split.val_images[start : start + _BATCH].to(device)
        probs.append(F.softmax(model((images - mean) / std).float(), dim=1).cpu())
    confidence, predicted = torch.cat(probs).max(dim=1)
    labels = split.val_labels
    classes = split.num_classes
    matrix = confusion_matrix(predicted, labels, classes)
    per_class = [row[c] / sum(row) if sum(row) else None for c, row in enumerate(matrix)]
    return HeldOut(
        class_names=list(split.class_names),
        train_counts=torch.bincount(split.train_labels, minlength=classes).tolist(),
        val_counts=torch.bincount(labels, minlength=classes).tolist(),
        labels=labels.tolist(),
        predicted=predicted.tolist(),
        confidence=plain_json(confidence.tolist()),
        confusion=matrix,
        per_class_accuracy=per_class,
        accuracy=(predicted == labels).float().mean().item() if len(labels) else 0.0,
    )
