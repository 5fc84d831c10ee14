"""A convolutional autoencoder: strided conv encoder, transposed-conv decoder.

After Masci, Meier, Cireşan & Schmidhuber, "Stacked Convolutional Auto-Encoders for Hierarchical
Feature Extraction", ICANN 2011, with the decoder built from transposed convolutions (Dumoulin &
Visin, "A guide to convolution arithmetic for deep learning", 2016, §4): each 3×3 stride-2
transposed conv undoes the shape of the matching stride-2 conv. Which of the sizes a stride-2
conv maps to the same output is picked by `output_padding`, computed here per axis with
`cnncore.arithmetic` so the reconstruction has exactly the input's size (odd sizes included).

Parameters at 1×28×28 (MNIST), no classes (the output is the reconstructed image):
    encoder conv1 16·1·3·3 + 16   =   160     28 → 14
    encoder conv2 32·16·3·3 + 32  = 4,640     14 → 7
    decoder deconv1 32·16·3·3 + 16 = 4,624     7 → 14
    decoder deconv2 16·1·3·3 + 1   =   145     14 → 28
                            total   9,569
"""

from __future__ import annotations

from torch import Tensor, nn

from cnncore.arithmetic import conv_transpose_output_size
from cnncore.models.layers import spatial_output_size
from cnncore.models.registry import register_model

__all__ = ["ConvAutoencoder", "autoencoder"]


def _upsampling(
    in_channels: int, out_channels: int, size: tuple[int, int], target: tuple[int, int]
) -> nn.ConvTranspose2d:
    """3×3 stride-2 transposed conv from `size` back to exactly `target` (H, W)."""
    natural = [conv_transpose_output_size(n, 3, 2, 1) for n in size]
    output_padding = (target[0] - natural[0], target[1] - natural[1])
    return nn.ConvTranspose2d(
        in_channels, out_channels, 3, stride=2, padding=1, output_padding=output_padding
    )


class ConvAutoencoder(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        input_size: tuple[int, int] = (28, 28),
        channels: tuple[int, int] = (16, 32),
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        size1 = spatial_output_size(self.encoder[0], *input_size)
        size2 = spatial_output_size(self.encoder[2], *size1)
        self.decoder = nn.Sequential(
            _upsampling(c2, c1, size2, size1),
            nn.ReLU(),
            _upsampling(c1, in_channels, size1, input_size),
            nn.Sigmoid(),  # pixel intensities in [0, 1]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


@register_model(
    title="Convolutional autoencoder",
    family="Autoencoder",
    paper="Masci et al., Stacked Convolutional Auto-Encoders for Hierarchical Feature "
    "Extraction, ICANN 2011",
    default_input=(1, 28, 28),
    num_classes=None,
)
def autoencoder(*, in_channels: int = 1, input_size: tuple[int, int] = (28, 28)) -> ConvAutoencoder:
    """Two stride-2 convs down, two stride-2 transposed convs up: 9,569 parameters at 1×28×28."""
    return ConvAutoencoder(in_channels, input_size)
