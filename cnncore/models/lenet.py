"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998), in the now-standard simplified form.

Variant: 1×32×32 input, C1 conv 1→6 5×5, S2 2×2 average pooling, C3 conv 6→16 5×5 (fully
connected between maps), S4 2×2 average pooling, C5 conv 16→120 5×5 (1×1 output at 32×32),
F6 linear 120→84, output linear 84→10, tanh activations. Parameters (weights + biases):

    C1  6·1·5·5 + 6      =    156
    C3  16·6·5·5 + 16    =  2,416
    C5  120·16·5·5 + 120 = 48,120
    F6  84·120 + 84      = 10,164
    out 10·84 + 10       =    850
                   total   61,706

The paper's own network differs in three places, giving its 60,840 trainable parameters: S2/S4
have a trainable coefficient and bias per map (12 + 32 parameters), C3 connects each of its 16
maps to only a subset of S2's maps (Table I, 1,516 parameters) and the output layer is a set of
Euclidean RBF units with fixed weights. This module is the common simplification (as in d2l.ai's
"LeNet" and most course notes), whose C5 is a real 5×5 convolution so other input sizes work.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnncore.models.layers import feature_map_size
from cnncore.models.registry import register_model

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (32, 32)
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S2
            nn.Conv2d(6, 16, kernel_size=5),  # C3
            nn.Tanh(),
            nn.AvgPool2d(kernel_size=2, stride=2),  # S4
            nn.Conv2d(16, 120, kernel_size=5),  # C5
            nn.Tanh(),
        )
        # At 32×32 C5 is 120×1×1; a larger input leaves a bigger map, flattened into F6.
        height, width = feature_map_size(self.features, *input_size)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(120 * height * width, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),  # output
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model(
    title="LeNet-5",
    family="LeNet",
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    default_input=(1, 32, 32),
    num_classes=10,
)
def lenet5(
    *, in_channels: int = 1, num_classes: int = 10, input_size: tuple[int, int] = (32, 32)
) -> LeNet5:
    """LeNet-5 as taught today: 61,706 parameters at 1×32×32 with 10 classes."""
    return LeNet5(in_channels, num_classes, input_size)
