"""VGG-16 (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015), configuration D, laid out as `torchvision.models.vgg16`.

The layer table is data (`CONFIGS`): numbers are 3×3 conv channels (padding 1, each followed by
ReLU), "M" a 2×2 max pool. An adaptive 7×7 average pool before the classifier (torchvision's
addition) lets inputs other than 224×224 through; at 224 it is the identity.
138,357,544 parameters at 1000 classes, as torchvision.
"""

from __future__ import annotations

from torch import nn

from cnncore.models.pooled_classifier import PooledClassifier, init_like_torchvision
from cnncore.models.registry import register_model

__all__ = ["CONFIGS", "VGG", "make_features", "vgg16"]

# Table 1 of the paper; "M" is max pooling.
CONFIGS: dict[str, list[int | str]] = {
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_features(config: list[int | str], in_channels: int) -> nn.Sequential:
    """The convolutional part from one column of the table (torchvision's `make_layers`)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class VGG(PooledClassifier):
    def __init__(
        self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5
    ) -> None:
        classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        super().__init__(features, (7, 7), classifier)
        init_like_torchvision(self)


@register_model(
    title="VGG-16",
    family="VGG",
    paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition, ICLR 2015",
    default_input=(3, 224, 224),
)
def vgg16(*, in_channels: int = 3, num_classes: int = 1000) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters at 1000 classes."""
    return VGG(make_features(CONFIGS["D"], in_channels), num_classes)
