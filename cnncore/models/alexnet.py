"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012), in torchvision's single-tower layout.

Torchvision follows the "one weird trick" variant (Krizhevsky, arXiv:1404.5997): 64-192-384-256-256
channels in one tower instead of the paper's two GPU halves of 48-128-192-192-128 each, no local
response normalisation, and an adaptive 6×6 average pool so any input of at least 63×63 works.
Parameter names and count (61,100,840 at 1000 classes) match `torchvision.models.alexnet`.
"""

from __future__ import annotations

from torch import nn

from cnncore.models.pooled_classifier import PooledClassifier
from cnncore.models.registry import register_model

__all__ = ["AlexNet", "alexnet"]


class AlexNet(PooledClassifier):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5) -> None:
        features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )
        super().__init__(features, (6, 6), classifier)


@register_model(
    title="AlexNet",
    family="AlexNet",
    paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional "
    "Neural Networks, NeurIPS 2012",
    default_input=(3, 224, 224),
)
def alexnet(*, in_channels: int = 3, num_classes: int = 1000) -> AlexNet:
    """AlexNet as torchvision builds it: 61,100,840 parameters at 1000 classes."""
    return AlexNet(in_channels, num_classes)
