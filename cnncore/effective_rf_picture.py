"""The effective receptive field of one unit on the user's own picture.

Luo et al. (NeurIPS 2016) average |∂unit/∂input| over random inputs; on one real picture the
same gradient says which pixels of *this* picture the unit responds to (the saliency of
Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2014, restricted to one
unit). The picture is prepared exactly as `/features` prepares it for the same weights
(`cnncore.features.prepare_input`: the weights' input size, mean, std and resize ratio), so the
unit, its box and the feature map shown are those of the same forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnncore.effective_rf import EffectiveField, _he_initialised, effective_receptive_field
from cnncore.effective_rf_cost import check_work
from cnncore.features import LayerLevels, layer_levels, prepare_input
from cnncore.images import MAX_RESIZED_PIXELS, DecodedImage, Preprocessed, unit_pixels
from cnncore.inspect import summarize_model
from cnncore.receptive_field import model_field_graph
from cnncore.weights import LoadedModel, WeightsInfo, initialisation_weights

__all__ = [
    "PictureEffectiveField",
    "initialised_model",
    "network_picture",
    "picture_effective_field",
]


@dataclass(frozen=True)
class PictureEffectiveField:
    model: str
    weights: WeightsInfo
    field: EffectiveField  # samples = 1; feature_map holds the unit's layer on this picture
    picture: np.ndarray  # what the network receives before normalisation: H×W×3 or H×W uint8
    # the feature map as uint8 levels from its own minimum to maximum, scaled as /features
    # scales every map (`layer_levels`); None where the layer is flattened
    feature_levels: LayerLevels | None


def initialised_model(name: str, seed: int = 0) -> LoadedModel:
    """A zoo model with He-normal weights drawn from `seed` (as `model_effective_field` uses for
    random inputs), with the picture recipe of a model that has no trained weights."""
    weights = initialisation_weights(name)
    return LoadedModel(name, _he_initialised(name, weights.input_shape, seed), weights)


def network_picture(prepared: Preprocessed) -> np.ndarray:
    """The normalised input turned back into 8-bit pixels: x·std + mean, the resized and
    cropped picture the network was given (grey models: one channel, H×W)."""
    values = prepared.tensor[0].double()
    mean = torch.tensor(prepared.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(prepared.std, dtype=torch.float64)[:, None, None]
    return unit_pixels(values * std + mean)


def picture_effective_field(
    loaded: LoadedModel,
    image: DecodedImage,
    layer: str | None = None,
    y: int | None = None,
    x: int | None = None,
    *,
    max_macs: int | None = None,
    max_resized_pixels: int = MAX_RESIZED_PIXELS,
) -> PictureEffectiveField:
    """ERF of unit (y, x) of `layer` (default: the deepest feature map's centre) on `image`,
    prepared as the weights expect: one forward and one backward pass."""
    weights = loaded.weights
    shape = weights.input_shape
    check_work(summarize_model(loaded.name, *shape).total_macs, max_macs)
    # exactly as /features prepares it
    prepared = prepare_input(weights, image, max_resized_pixels)
    geometry = model_field_graph(loaded.name, *shape)  # traced once, not in this request
    field = effective_receptive_field(
        loaded.model, shape, layer, y, x, image=prepared.tensor[0], geometry=geometry
    )
    levels = None
    if field.feature_map is not None:
        levels = layer_levels(field.layer, "channel mean", field.feature_map)
    return PictureEffectiveField(loaded.name, weights, field, network_picture(prepared), levels)
