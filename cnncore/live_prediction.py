"""Every class's probability for one picture: what a live prediction (webcam or drawing pad,
many times a second) shows as bars.

The picture is prepared exactly as the feature maps prepare it (`cnncore.features.prepare_input`:
the weights' input size, channels and normalisation), run once without autograd, and the
logits go through softmax (``torch.softmax``): all classes, in the model's output order, so the
bars stay in place from frame to frame and their values sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnncore.errors import CNNCoreError
from cnncore.features import prepare_input
from cnncore.images import MAX_RESIZED_PIXELS, DecodedImage
from cnncore.weights import LoadedModel

__all__ = ["ClassProbabilities", "class_probabilities"]


@dataclass(frozen=True)
class ClassProbabilities:
    """softmax(logits) of one picture: `probs[i]` is the probability of class `labels[i]`."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]
    input_shape: tuple[int, int, int]  # what the network was given: channels, height, width


def class_probabilities(
    loaded: LoadedModel, image: DecodedImage, max_resized_pixels: int = MAX_RESIZED_PIXELS
) -> ClassProbabilities:
    """All classes' probabilities for `image` through `loaded` (eval mode, no gradients).

    Weights that do not know their class names (an untrained initialisation) are refused:
    their outputs are not classes a student could read.
    """
    weights = loaded.weights
    if not weights.labels:
        raise CNNCoreError(
            f"{loaded.name}'s weights do not name their classes: train it first",
            "model",
            code="live_no_classes",
            ctx={"model": loaded.name},
        )
    prepared = prepare_input(weights, image, max_resized_pixels)
    parameter = next(loaded.model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    with torch.inference_mode():
        logits = loaded.model(prepared.tensor.to(device))
    probs = torch.softmax(logits.detach().float().reshape(-1), dim=0)
    if probs.numel() != len(weights.labels):
        raise CNNCoreError(
            f"the model gives {probs.numel()} scores for {len(weights.labels)} labels",
            "model",
            code="live_label_mismatch",
        )
    return ClassProbabilities(tuple(weights.labels), tuple(probs.tolist()), weights.input_shape)
