"""MobileNet v1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", arXiv:1704.04861, 2017) and MobileNet v2 (Sandler et al., "MobileNetV2:
Inverted Residuals and Linear Bottlenecks", CVPR 2018; as `torchvision.models.mobilenet_v2`).

v1 replaces each standard conv by a depthwise-separable pair: a 3×3 depthwise conv (one filter per
channel, `groups=C`) and a 1×1 pointwise conv mixing channels. Its cost relative to a standard
k×k conv with N output channels is 1/N + 1/k² (paper §3.1).

v1 parameter count at 1.0-224, 1000 classes (convs without bias, BN = γ and β per channel, as the
reference implementations that report 4,231,976):
    stem conv 3→32 3×3 s2: 864 + BN 64                                     =       928
    13 blocks, each C·9 + 2C (depthwise + BN) + C·O + 2O (pointwise + BN):
      32→64 352+2,176   64→128 704+8,448   128→128 1,408+16,640   128→256 1,408+33,280
      256→256 2,816+66,048   256→512 2,816+132,096   5 × 512→512 5 × (5,632+263,168)
      512→1024 5,632+526,336   1024→1024 11,264+1,050,624                =  3,206,048
    classifier 1024·1000 + 1000                                           =  1,025,000
                                                                   total     4,231,976
v2 (torchvision): 3,504,872 parameters at 1.0-224 with 1000 classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnncore.models.pooled_classifier import PooledClassifier, init_like_torchvision
from cnncore.models.registry import register_model

__all__ = [
    "MOBILENET_V1_SETTING",
    "MOBILENET_V2_SETTING",
    "ConvBNActivation",
    "DepthwiseSeparableConv",
    "InvertedResidual",
    "MobileNetV1",
    "MobileNetV2",
    "make_divisible",
    "mobilenet_v1",
    "mobilenet_v2",
]

# MobileNet v1, Table 1 of the paper, after the stem: output channels c, stride s.
MOBILENET_V1_SETTING: list[tuple[int, int]] = [
    # c, s
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
]

# MobileNet v2, Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTING: list[tuple[int, int, int, int]] = [
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10% down (the TF reference)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNActivation(nn.Sequential):
    """conv (no bias) → BN → ReLU6 (or no activation), torchvision's `Conv2dNormActivation`:
    a Sequential, so parameter names are `0.weight`, `1.weight`, ... as in its state dicts."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU6,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                (kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class DepthwiseSeparableConv(nn.Module):
    """3×3 depthwise conv (groups = channels) → BN → ReLU, then 1×1 pointwise → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNActivation(
            in_channels, in_channels, 3, stride, groups=in_channels, activation=nn.ReLU
        )
        self.pointwise = ConvBNActivation(in_channels, out_channels, 1, activation=nn.ReLU)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(PooledClassifier):
    def __init__(
        self, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0
    ) -> None:
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [
            ConvBNActivation(in_channels, channels, 3, stride=2, activation=nn.ReLU)
        ]
        for c, s in MOBILENET_V1_SETTING:
            out_channels = make_divisible(c * width_mult)
            layers.append(DepthwiseSeparableConv(channels, out_channels, s))
            channels = out_channels
        super().__init__(nn.Sequential(*layers), (1, 1), nn.Linear(channels, num_classes))


class InvertedResidual(nn.Module):
    """1×1 expand by t → 3×3 depthwise (stride s) → 1×1 project, the last with no activation
    (the "linear bottleneck": ReLU on the narrow map would destroy information, paper §3.2).
    The input is added back when stride is 1 and the channels agree.

    The projection is a bare conv and batch norm inside `conv` (`conv.1`/`conv.2` in the first
    block, `conv.2`/`conv.3` after an expansion), torchvision's names, so its published
    state dict loads as it is."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNActivation(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNActivation(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(PooledClassifier):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        channels = make_divisible(32 * width_mult)
        last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNActivation(in_channels, channels, 3, stride=2)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            out_channels = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        layers.append(ConvBNActivation(channels, last_channels, kernel_size=1))
        classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channels, num_classes))
        super().__init__(nn.Sequential(*layers), (1, 1), classifier)
        init_like_torchvision(self)


@register_model(
    title="MobileNet v1",
    family="MobileNet",
    paper="Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
    "Applications, arXiv:1704.04861, 2017",
    default_input=(3, 224, 224),
)
def mobilenet_v1(
    *, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0
) -> MobileNetV1:
    """MobileNet v1 1.0-224: 4,231,976 parameters at 1000 classes."""
    return MobileNetV1(in_channels, num_classes, width_mult)


@register_model(
    title="MobileNet v2",
    family="MobileNet",
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    default_input=(3, 224, 224),
)
def mobilenet_v2(
    *, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0
) -> MobileNetV2:
    """MobileNet v2 as torchvision: 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(in_channels, num_classes, width_mult)
