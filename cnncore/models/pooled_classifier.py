"""The head AlexNet, VGG and the MobileNets end with, and torchvision's initialisation.

`features` → adaptive average pool → flatten → `classifier`, with these very attribute names so
parameter names (`features.0.weight`, `classifier.6.bias`) and layer paths stay those of
`torchvision.models` (the adaptive pool lets inputs other than 224×224 through).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PooledClassifier", "init_like_torchvision"]


class PooledClassifier(nn.Module):
    """features → AdaptiveAvgPool2d(`pool_size`) → Flatten → classifier."""

    def __init__(
        self, features: nn.Module, pool_size: tuple[int, int], classifier: nn.Module
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def init_like_torchvision(model: nn.Module) -> None:
    """torchvision's VGG / MobileNetV2 initialisation: He normal, fan-out, for convs (He et al.,
    ICCV 2015), BN as the identity, N(0, 0.01) for linear layers, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
