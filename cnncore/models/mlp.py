"""The fully connected baseline: flatten the image, two hidden layers, a linear classifier.

LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 1998, §III.C: "3-layer NN, 300+100 hidden units" on 28×28 MNIST digits (3.05% test
error), the yardstick LeNet-5 is measured against. Parameters at 1×28×28 with 10 classes:
    hidden1 300·784 + 300 = 235,500
    hidden2 100·300 + 100 =  30,100
    output   10·100 + 10  =   1,010
                    total   266,610
Every pixel gets its own weight to every hidden unit, which is what convolution's weight sharing
avoids: compare with LeNet-5's 61,706.
"""

from __future__ import annotations

from torch import Tensor, nn

from cnncore.models.registry import register_model

__all__ = ["MLP", "mlp"]


class MLP(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: tuple[int, int] = (28, 28),
        hidden: tuple[int, ...] = (300, 100),
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        width = in_channels * input_size[0] * input_size[1]
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.hidden(self.flatten(x)))


@register_model(
    title="Multilayer perceptron (baseline)",
    family="MLP",
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    default_input=(1, 28, 28),
    num_classes=10,
)
def mlp(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: tuple[int, int] = (28, 28),
    hidden: tuple[int, ...] = (300, 100),
) -> MLP:
    """784-300-100-10 fully connected network: 266,610 parameters at 1×28×28 with 10 classes."""
    return MLP(in_channels, num_classes, input_size, hidden)
