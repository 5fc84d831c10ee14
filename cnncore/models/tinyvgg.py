"""TinyVGG, the network of CNN Explainer (Wang et al., "CNN Explainer: Learning Convolutional
Neural Networks with Interactive Visualization", IEEE TVCG 2021; poloclub/cnn-explainer).

Two VGG-style blocks of conv-ReLU-conv-ReLU-maxpool (3×3 kernels, no padding, 10 channels) and one
linear layer, on 3×64×64 Tiny ImageNet images with 10 classes. Parameters at that size:

    block1 conv1  10·3·3·3 + 10   =    280
    block1 conv2  10·10·3·3 + 10  =    910
    block2 conv1                  =    910
    block2 conv2                  =    910
    classifier    10·(10·13·13) + 10 = 16,910     (64 → 62 → 60 → 30 → 28 → 26 → 13)
                             total   19,920
"""

from __future__ import annotations

from torch import Tensor, nn

from cnncore.models.layers import feature_map_size
from cnncore.models.registry import register_model

__all__ = ["TinyVGG", "TinyVGGBlock", "tinyvgg"]


class TinyVGGBlock(nn.Module):
    """conv 3×3 → ReLU → conv 3×3 → ReLU → max pool 2×2, no padding (CNN Explainer's layout)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))


class TinyVGG(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        input_size: tuple[int, int] = (64, 64),
        channels: int = 10,
    ) -> None:
        super().__init__()
        self.block1 = TinyVGGBlock(in_channels, channels)
        self.block2 = TinyVGGBlock(channels, channels)
        height, width = feature_map_size([self.block1, self.block2], *input_size)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels * height * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.block2(self.block1(x))))


@register_model(
    title="TinyVGG (CNN Explainer)",
    family="VGG",
    paper="Wang et al., CNN Explainer: Learning Convolutional Neural Networks with Interactive "
    "Visualization, IEEE TVCG 2021",
    default_input=(3, 64, 64),
    num_classes=10,
)
def tinyvgg(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    input_size: tuple[int, int] = (64, 64),
    channels: int = 10,
) -> TinyVGG:
    """CNN Explainer's TinyVGG: 19,920 parameters at 3×64×64 with 10 classes."""
    return TinyVGG(in_channels, num_classes, input_size, channels)
