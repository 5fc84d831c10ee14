"""Is a picture like the ones a trained classifier learned from? A measured familiarity score.

A classifier always answers with one of its classes, however foreign the picture: TinyVGG,
trained on generated shapes, calls a flower "cross 95 %". Its softmax cannot say so (a network
can be confidently wrong far from its data), so the score looks at what the network computes
inside instead, after Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks" (NeurIPS 2018):

- features: at a few probe layers (dotted module paths, `PROBES`) each feature map is summarised
  by its mean and standard deviation over positions (Lee et al. pool intermediate maps by their
  mean; the spread adds how busy a map is). The MLP has no maps: its probe is the picture it
  receives, summarised by a 4×4 grid of means and the mean, spread and upper quantiles of its
  pixels. Penultimate features alone were measured and were not enough (docs/PERFORMANCE.md:
  shapes into LeNet-5 AUROC 0.85, into the MLP 0.80).
- model: one Gaussian per class over the training pictures' features, all classes sharing one
  covariance, estimated with Ledoit & Wolf's shrinkage ("A well-conditioned estimator for
  large-dimensional covariance matrices", J. Multivariate Anal. 2004) so it stays invertible.
- score: the Mahalanobis distance to the nearest class mean, sqrt(min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c)),
  in units of the training pictures' own spread.
- threshold: the 95th percentile of the distances of held-out training-distribution pictures, so
  95 % of pictures like the training ones pass (95 % true positive rate); farther is "unlike".

The statistics are fitted once (`fit_familiarity`, called by `scripts/train_small_models.py`) on
the bundled training data, passed through the page's own preprocessing, and stored as JSON in the
weights file's metadata (`TrainedMetadata.familiarity`); the weights themselves are untouched.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from cnncore.features import prepare_input, symbolic_trace
from cnncore.images import DecodedImage
from cnncore.weights import LoadedModel, WeightsInfo

__all__ = [
    "METHOD",
    "PROBES",
    "TRUE_POSITIVE_RATE",
    "Familiarity",
    "distances",
    "familiarity",
    "fit_familiarity",
    "model_inputs",
    "picture_of",
]

METHOD = "mahalanobis"
TRUE_POSITIVE_RATE = 0.95
# model → layers whose outputs are summarised ("input": the picture as the network receives it)
PROBES: dict[str, tuple[str, ...]] = {
    "tinyvgg": ("block1.pool", "block2.pool"),
    "lenet5": ("features.2", "features.5"),  # S2 and S4, after their average pooling
    "mlp": ("input",),  # its hidden layers are plain vectors: nothing to pool over positions
}
_QUANTILES = (0.5, 0.75, 0.9, 0.95)
_BATCH = 256


@dataclass(frozen=True)
class Familiarity:
    """One picture's distance from a model's training pictures, and the line it is judged by."""

    score: float  # Mahalanobis distance to the nearest class mean
    threshold: float  # 95 % of held-out training-distribution pictures are at most this far
    unlike: bool  # score > threshold: the prediction says little about this picture
    method: str = METHOD


def picture_of(images: torch.Tensor) -> DecodedImage:
    """A dataset image (C×H×W in [0, 1], 1 or 3 channels) as the 8-bit RGB picture a student
    would upload, so that it goes through exactly the page's preprocessing."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    return DecodedImage(np.ascontiguousarray(pixels.transpose(1, 2, 0)), "PNG", "RGB", 1)


def model_inputs(weights: WeightsInfo, pictures: Sequence[DecodedImage]) -> torch.Tensor:
    """Pictures preprocessed as these weights expect (the page's `prepare_input`), batched."""
    return torch.cat([prepare_input(weights, picture).tensor for picture in pictures])


def _summary(probe: str, values: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×D: per-channel mean and spread; the MLP's picture adds a grid and quantiles."""
    flat = values.flatten(2)
    parts = [flat.mean(2), flat.std(2, unbiased=False)]
    if probe == "input":
        grid = nn.functional.adaptive_avg_pool2d(values, 4).flatten(1)
        quantiles = torch.quantile(flat, torch.tensor(_QUANTILES, dtype=values.dtype), dim=2)
        parts += [grid, quantiles.permute(1, 2, 0).flatten(1)]
    return torch.cat(parts, 1).double()


class _Probes(nn.Module):
    """The model cut after its probe layers: one pass returns their outputs, nothing else."""

    def __init__(self, model: nn.Module, probes: tuple[str, ...]):
        super().__init__()
        graph_module = symbolic_trace(model)
        graph = graph_module.graph
        found: dict[str, fx.Node] = {}
        for node in graph.nodes:
            if node.op == "placeholder":
                found["input"] = node
            elif node.op == "call_module":
                found[str(node.target)] = node
        missing = [p for p in probes if p not in found]
        if missing:
            raise ValueError(f"{type(model).__name__} has no layer {missing[0]!r}")
        output = next(node for node in graph.nodes if node.op == "output")
        output.args = (tuple(found[p] for p in probes),)
        graph.eliminate_dead_code()
        graph_module.recompile()
        self.graph_module = graph_module
        self.probes = probes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.graph_module(x)
        return torch.cat([_summary(p, v) for p, v in zip(self.probes, outputs, strict=True)], 1)


_cut: weakref.WeakKeyDictionary[nn.Module, _Probes] = weakref.WeakKeyDictionary()
_cut_lock = threading.Lock()


def _probe_model(name: str, model: nn.Module) -> _Probes:
    # Traced once per loaded model; the cut graph shares the model's layers (no copy of weights).
    with _cut_lock:
        cut = _cut.get(model)
        if cut is None:
            cut = _cut[model] = _Probes(model, PROBES[name])
        return cut


def _features(name: str, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    cut = _probe_model(name, model)
    device = next(model.parameters()).device
    with torch.inference_mode():
        return torch.cat([cut(batch.to(device)).cpu() for batch in inputs.split(_BATCH)])


def _min_distance(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor):
    centred = features[:, None, :] - means[None]  # N × classes × D
    squared = torch.einsum("ncd,de,nce->nc", centred, precision, centred)
    return squared.min(1).values.clamp_min(0).sqrt()


def distances(loaded: LoadedModel, inputs: torch.Tensor) -> torch.Tensor:
    """Each preprocessed input's Mahalanobis distance to the nearest class of the model's
    stored statistics (float64, N)."""
    stats = _stats(loaded)
    if stats is None:
        raise ValueError(f"{loaded.name} has no familiarity statistics")
    features = _features(loaded.name, loaded.model, inputs)
    return _min_distance(features, stats["means"], stats["precision"])


def _stats(loaded: LoadedModel) -> dict[str, Any] | None:
    trained = loaded.weights.trained
    record = trained.familiarity if trained is not None else None
    if loaded.weights.source != "trained" or not record or loaded.name not in PROBES:
        return None
    return {
        "means": torch.tensor(record["means"], dtype=torch.float64),
        "precision": torch.tensor(record["precision"], dtype=torch.float64),
        "threshold": float(record["threshold"]),
    }


def familiarity(
    loaded: LoadedModel, picture: DecodedImage | torch.Tensor | None
) -> Familiarity | None:
    """How far a picture lies from the pictures `loaded` was trained on. `picture`: a decoded
    picture (preprocessed here as the page does) or the 1×C×H×W network input already prepared
    (`FeatureMaps.network_input`). None when the weights carry no statistics (initialisation, a
    training run's checkpoint, ImageNet models) or there is no input."""
    stats = _stats(loaded)
    if stats is None or picture is None:
        return None
    if isinstance(picture, DecodedImage):
        picture = prepare_input(loaded.weights, picture).tensor
    features = _features(loaded.name, loaded.model, picture)
    score = float(_min_distance(features, stats["means"], stats["precision"])[0])
    threshold = stats["threshold"]
    return Familiarity(score=score, threshold=threshold, unlike=score > threshold)


def _rounded(values: torch.Tensor) -> list:
    # 9 significant digits: distances change by ~1e-8 relative, the metadata is half the size
    return np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[object])(values.numpy()).tolist()


def fit_familiarity(
    loaded: LoadedModel,
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    held_out_inputs: torch.Tensor,
) -> dict[str, Any]:
    """The statistics to store in the weights' metadata: class means and the shared precision
    (Ledoit-Wolf) of the training inputs' features, and the threshold that passes
    `TRUE_POSITIVE_RATE` of the held-out inputs (all inputs already preprocessed)."""
    from sklearn.covariance import LedoitWolf

    features = _features(loaded.name, loaded.model, train_inputs)
    labels = train_labels.long()
    classes = int(labels.max()) + 1
    means = torch.stack([features[labels == c].mean(0) for c in range(classes)])
    covariance = LedoitWolf().fit((features - means[labels]).numpy())
    precision = torch.from_numpy(covariance.precision_)
    precision = (precision + precision.T) / 2  # exactly symmetric: distances never go negative
    held_out = _features(loaded.name, loaded.model, held_out_inputs)
    threshold = torch.quantile(_min_distance(held_out, means, precision), TRUE_POSITIVE_RATE)
    return {
        "method": METHOD,
        "probes": list(PROBES[loaded.name]),
        "means": _rounded(means),
        "precision": _rounded(precision),
        "shrinkage": float(covariance.shrinkage_),
        "threshold": float(threshold),
        "true_positive_rate": TRUE_POSITIVE_RATE,
        "fit_size": len(labels),
        "threshold_size": len(held_out_inputs),
    }
