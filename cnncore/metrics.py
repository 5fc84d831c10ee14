"""What a training run shows besides loss and accuracy, as plain-JSON dataclasses.

- Per-layer gradient and weight norms: the vanishing/exploding-gradient picture of Glorot &
  Bengio (2010), "Understanding the difficulty of training deep feedforward neural networks".
- Activation statistics (mean, standard deviation, fraction exactly zero — dead ReLUs) per
  layer, captured by forward hooks that are removed before returning.
- Weight histograms, first-layer filters as images (Zeiler & Fergus 2014, "Visualizing and
  understanding convolutional networks"), confusion matrix, misclassified examples.
Images travel as base64 PNG (uint8), the compact form the design asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnncore.features import filter_levels, filters_rgb, first_conv
from cnncore.images import png_base64, unit_pixels

__all__ = [
    "ActivationStats",
    "FilterImages",
    "Misclassified",
    "WeightHistogram",
    "activation_statistics",
    "confusion_matrix",
    "first_layer_filters",
    "layer_norms",
    "misclassified_examples",
    "weight_histograms",
    "weighted_layers",
]

# Leaves whose output is not a new view of the data: no statistics for them.
_SKIPPED = (nn.Flatten, nn.Dropout, nn.Identity)


@dataclass
class ActivationStats:
    layer: str  # dotted module path
    kind: str  # module class name: Conv2d, ReLU, …
    mean: float
    std: float
    fraction_zero: float


@dataclass
class WeightHistogram:
    layer: str
    edges: list[float]  # bins + 1 edges
    counts: list[int]


@dataclass
class FilterImages:
    layer: str
    shape: list[int]  # out_channels, in_channels, kh, kw of the weight
    scale: float  # max |w|: level 127.5 + 127.5 · w / scale, so 0 is mid-grey
    pixels: list  # filters × kh × kw × 3 nested uint8 lists (RGB; grey repeated)
    png: str  # an atlas of all filters (near-square grid, white gaps), base64 PNG


@dataclass
class Misclassified:
    index: int  # position in the validation split
    true: int
    predicted: int
    confidence: float  # softmax probability of the predicted class
    png: str  # the image as the network saw it before normalisation, base64 PNG


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) for every module that owns a `weight` parameter, in model order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight", None), nn.Parameter)
    ]


@torch.no_grad()
def layer_norms(layers: list[tuple[str, nn.Module]]) -> tuple[dict[str, float], dict[str, float]]:
    """‖∂L/∂W‖₂ and ‖W‖₂ of each layer's weight (biases left out, as in Glorot & Bengio's
    plots). One device→host copy for all layers: cheap enough to run every few steps."""
    weights = [module.weight for _, module in layers]
    norms = torch.stack([torch.linalg.vector_norm(w) for w in weights])
    grads = torch.stack([
        torch.linalg.vector_norm(w.grad) if w.grad is not None else w.new_zeros(())
        for w in weights
    ])  # fmt: skip
    names = [name for name, _ in layers]
    grad_values, weight_values = torch.stack([grads, norms]).float().cpu().tolist()
    return dict(zip(names, grad_values, strict=True)), dict(zip(names, weight_values, strict=True))


@torch.no_grad()
def activation_statistics(model: nn.Module, images: torch.Tensor) -> list[ActivationStats]:
    """Run `images` once through `model` (as it is: call `.eval()` first for inference
    behaviour) and summarise every leaf module's output. The hooks never outlive the call."""
    stats: list[ActivationStats] = []

    def hook_for(name: str):
        def hook(module: nn.Module, _inputs, output) -> None:
            if not isinstance(output, torch.Tensor):
                return
            values = output.detach().float()
            stats.append(ActivationStats(
                name, type(module).__name__, values.mean().item(),
                values.std().item() if values.numel() > 1 else 0.0,
                (values == 0).float().mean().item(),
            ))  # fmt: skip

        return hook

    handles = [
        module.register_forward_hook(hook_for(name))
        for name, module in model.named_modules()
        if name and next(module.children(), None) is None and not isinstance(module, _SKIPPED)
    ]
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
    return stats


@torch.no_grad()
def weight_histograms(model: nn.Module, bins: int = 30) -> list[WeightHistogram]:
    """A histogram of each layer's weights over its own [min, max] range."""
    out = []
    for name, module in weighted_layers(model):
        values = module.weight.detach().float().cpu().flatten()
        low, high = values.min().item(), values.max().item()
        if low == high:  # a constant layer (zero init): one centred bin of width 1
            low, high = low - 0.5, high + 0.5
        counts, edges = torch.histogram(values, bins=bins, range=(low, high))
        out.append(WeightHistogram(name, edges.tolist(), counts.round().int().tolist()))
    return out


@torch.no_grad()
def first_layer_filters(model: nn.Module, max_filters: int = 64) -> FilterImages | None:
    """The first convolution's kernels as pictures, drawn by `cnncore.features` (the same
    rendering as the feature-map page): one shared symmetric scale, zero is mid-grey."""
    found = first_conv(model)
    if found is None:
        return None
    name, conv = found
    levels = filter_levels(conv.weight, max_filters)
    return FilterImages(
        name, list(conv.weight.shape), conv.weight.detach().abs().max().item(),
        levels.tolist(), png_base64(filters_rgb(model, max_filters)),
    )  # fmt: skip


def confusion_matrix(
    predicted: torch.Tensor, target: torch.Tensor, classes: int
) -> list[list[int]]:
    """Row = true class, column = predicted class (scikit-learn's convention)."""
    flat = target.long().cpu() * classes + predicted.long().cpu()
    return torch.bincount(flat, minlength=classes * classes).view(classes, classes).tolist()


def misclassified_examples(
    images: torch.Tensor,
    target: torch.Tensor,
    probs: torch.Tensor,
    limit: int = 8,
) -> list[Misclassified]:
    """The first `limit` wrong predictions, in validation order (stable between epochs, so a
    student sees the same digit become right). `images` are the un-normalised [0, 1] pixels."""
    confidence, predicted = probs.max(dim=1)
    wrong = torch.nonzero(predicted.cpu() != target.cpu()).flatten()[:limit].tolist()
    out = []
    for i in wrong:
        png = png_base64(unit_pixels(images[i]))
        out.append(Misclassified(i, int(target[i]), int(predicted[i]), float(confidence[i]), png))
    return out
