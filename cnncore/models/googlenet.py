"""GoogLeNet / Inception v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015), laid
out as `torchvision.models.googlenet`: every conv is followed by batch norm (eps 0.001) as in
torchvision's `BasicConv2d`, and max pools round up (`ceil_mode=True`), as in the Caffe original.

An Inception module runs four branches on the same input and concatenates them along channels:
1×1; 1×1 reduce → 3×3; 1×1 reduce → "5×5"; 3×3 max pool → 1×1 projection. The 1×1 reductions are
the bottlenecks that make the wide module affordable. Torchvision's third branch uses a 3×3 kernel
where the paper has 5×5 (a bug it keeps for compatibility with its released weights,
pytorch/vision#906); `branch3_kernel=3` (default) reproduces its 6,624,904 parameters (13,004,888
with both auxiliary classifiers), `branch3_kernel=5` builds the paper's module.

Torchvision's published ImageNet weights were converted from Google's TensorFlow model, which
took pixels scaled to [-1, 1]: torchvision builds them with `transform_input=True`, which takes
a picture normalised with ImageNet's mean and std back to (x − 0.5) / 0.5 per channel before the
first conv (`InputTransform`, the same float operations in the same order).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnncore.errors import CNNCoreError
from cnncore.models.registry import register_model

__all__ = [
    "INCEPTION_SETTINGS",
    "BasicConv2d",
    "GoogLeNet",
    "Inception",
    "InceptionAux",
    "InputTransform",
    "googlenet",
]

# Table 1 of the paper: in, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
INCEPTION_SETTINGS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm → ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches, concatenated: output channels = ch1x1 + ch3x3 + ch5x5 + pool_proj."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        branch3_kernel: int = 3,
    ) -> None:
        super().__init__()
        if branch3_kernel % 2 == 0:
            raise CNNCoreError(
                f"branch3_kernel must be odd so the branches keep the same size, "
                f"got {branch3_kernel}",
                "branch3_kernel",
                code="kernel_must_be_odd",
                ctx={"kernel": branch3_kernel},
            )
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate map (4a and 4d); used only while training."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(2048, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(self.conv(self.avgpool(x)))
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class InputTransform(nn.Module):
    """ImageNet-normalised input → (x − 0.5) / 0.5 per channel, as torchvision's
    `GoogLeNet._transform_input`: x·(std/0.5) + (mean − 0.5)/0.5, channel by channel."""

    fx_leaf = True  # one layer on the feature-map page, not ten tiny arithmetic nodes

    def forward(self, x: Tensor) -> Tensor:
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)


class GoogLeNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        aux_logits: bool = False,
        branch3_kernel: int = 3,
        dropout: float = 0.2,
        transform_input: bool = False,
    ) -> None:
        super().__init__()
        self.transform_input = InputTransform() if transform_input else None
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        def inception(name: str) -> Inception:
            return Inception(*INCEPTION_SETTINGS[name], branch3_kernel=branch3_kernel)

        self.inception3a = inception("inception3a")
        self.inception3b = inception("inception3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception("inception4a")
        self.inception4b = inception("inception4b")
        self.inception4c = inception("inception4c")
        self.inception4d = inception("inception4d")
        self.inception4e = inception("inception4e")
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception("inception5a")
        self.inception5b = inception("inception5b")
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Logits; in training mode with auxiliary classifiers, (logits, aux2, aux1)."""
        if self.transform_input is not None:
            x = self.transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if aux1 is not None and aux2 is not None:
            return x, aux2, aux1
        return x


@register_model(
    title="GoogLeNet (Inception v1)",
    family="Inception",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    default_input=(3, 224, 224),
)
def googlenet(
    *,
    in_channels: int = 3,
    num_classes: int = 1000,
    aux_logits: bool = False,
    branch3_kernel: int = 3,
    transform_input: bool = False,
) -> GoogLeNet:
    """GoogLeNet as torchvision: 6,624,904 parameters (13,004,888 with `aux_logits`);
    `transform_input` for torchvision's published ImageNet weights (see the module docstring)."""
    return GoogLeNet(
        in_channels, num_classes, aux_logits, branch3_kernel, transform_input=transform_input
    )
