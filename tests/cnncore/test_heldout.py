"""Held-out predictions: every picture's class and confidence as torch computes them, and a
diverged network's non-finite confidences as None (strict JSON has no NaN)."""

import json
from dataclasses import asdict
from types import SimpleNamespace

import torch
from torch import nn

from cnncore.data import DataSplit
from cnncore.heldout import held_out_predictions


def split(count: int = 70, classes: int = 3) -> DataSplit:
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(count, 3, 8, 8, generator=generator)
    labels = torch.arange(count) % classes
    return DataSplit("random", images[:10], labels[:10], images, labels,
                     [f"class {c}" for c in range(classes)])  # fmt: skip


def model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))


TRAINED = SimpleNamespace(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])


def test_predictions_and_confidences_are_torchs():
    data, network = split(), model()
    held = held_out_predictions(network, data, TRAINED)
    mean = torch.tensor(TRAINED.mean).view(1, 3, 1, 1)
    std = torch.tensor(TRAINED.std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(network((data.val_images - mean) / std), dim=1)
    confidence, predicted = probs.max(dim=1)
    assert held.predicted == predicted.tolist()
    torch.testing.assert_close(torch.tensor(held.confidence), confidence, rtol=1e-6, atol=1e-7)
    expected = (predicted == data.val_labels).float().mean().item()
    assert held.accuracy == expected
    assert sum(map(sum, held.confusion)) == 70


def test_a_diverged_network_has_no_confidence_but_strict_json():
    network = model()
    with torch.no_grad():
        network[1].weight[0, 0] = float("inf")  # +inf and −inf logits: softmax gives NaN
    held = held_out_predictions(network, split(), TRAINED)
    assert None in held.confidence
    assert all(c is None or 0 <= c <= 1 for c in held.confidence)
    json.dumps(asdict(held), allow_nan=False)  # raises on a NaN left anywhere
