"""ERF on a picture: the prepared input is /features' own, the gradient is autograd's, the map
shown is the layer's output, and the initial weights are seeded."""

import numpy as np
import pytest
import torch

from cnncore.effective_rf_picture import (
    initialised_model,
    network_picture,
    picture_effective_field,
)
from cnncore.errors import CNNCoreError
from cnncore.images import preprocess, sample_image
from cnncore.weights import load_model


def test_network_picture_is_the_crop_before_normalisation():
    image = sample_image("flower")  # 427×640: resized, then centre-cropped
    recipe = {"size": (40, 48), "channels": 3, "resize_ratio": 1.0}
    plain = preprocess(image, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), **recipe)
    normalised = preprocess(image, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **recipe)
    expected = np.rint(plain.tensor[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert network_picture(normalised).shape == (40, 48, 3)
    assert np.array_equal(network_picture(normalised), expected)
    grey = preprocess(image, mean=(0.5,), std=(0.5,), **{**recipe, "channels": 1})
    assert network_picture(grey).shape == (40, 48)


def test_gradient_and_feature_map_equal_autograd_on_the_trained_lenet():
    loaded = load_model("lenet5")
    image = sample_image("digit")
    result = picture_effective_field(loaded, image, "features.3", 4, 7)
    w = loaded.weights
    x = preprocess(image, size=w.input_shape[1:], channels=1, mean=w.mean, std=w.std).tensor
    x.requires_grad_(True)
    out = loaded.model.features[:4](x)
    (grad,) = torch.autograd.grad(out[0, :, 4, 7].sum(), x)
    heat = grad.abs().sum(1)[0]
    field = result.field
    assert field.samples == 1 and (field.y, field.x) == (4, 7)
    assert torch.allclose(field.heatmap, heat / heat.max(), atol=1e-6)
    assert torch.allclose(field.feature_map, out[0].detach().mean(0), atol=1e-6)
    assert field.feature_map.shape == (10, 10)
    # conv 5, pool 2/2, conv 5 at jump 2: r = 6 + 4·2 = 14, unit u sees rows 2u .. 2u + 13;
    # the gradient lives inside that box and nowhere else
    box = field.theoretical.clipped_box
    assert (box.y0, box.y1, box.x0, box.x1) == (8, 21, 14, 27)
    outside = torch.ones_like(heat, dtype=torch.bool)
    outside[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = False
    assert heat[outside].abs().max() == 0 and heat.max() > 0
    assert result.picture.shape == (32, 32) and result.weights.source == "trained"


def test_initial_weights_are_seeded_and_the_default_unit_is_centred():
    first, again, other = (initialised_model("tinyvgg", s) for s in (3, 3, 4))
    for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(first.model.parameters()), next(other.model.parameters()))
    assert first.weights.source == "initialisation" and first.weights.input_shape == (3, 64, 64)
    result = picture_effective_field(first, sample_image("circle"))
    assert result.field.layer == "block2.pool"
    height, width = result.field.feature_map.shape
    assert (result.field.y, result.field.x) == (height // 2, width // 2)
    assert result.picture.shape == (64, 64, 3)


@pytest.mark.parametrize("layer", ["features.3", "features.1", "features.5"])
def test_feature_map_levels_run_from_its_minimum_to_its_maximum(layer):
    """The map's levels are /features' per-map scaling (`layer_levels`): level 0 at the
    minimum, 255 at the maximum, round(255 · (v − low) / (high − low)) between."""
    result = picture_effective_field(load_model("lenet5"), sample_image("digit"), layer)
    values = result.field.feature_map.double().numpy()
    low, high = values.min(), values.max()
    levels = result.feature_levels
    assert levels.ranges == ((float(result.field.feature_map.min()), float(high)),)
    assert levels.levels.shape == (1, *values.shape) and levels.levels.dtype == np.uint8
    expected = np.rint((values - low) / (high - low) * 255)
    assert np.abs(levels.levels[0].astype(int) - expected).max() <= 1  # float32 ties
    assert levels.levels[0].min() == 0 and levels.levels[0].max() == 255


def test_flattened_layer_has_no_feature_map_and_errors_name_their_field():
    loaded = load_model("lenet5")
    image = sample_image("digit")
    flattened = picture_effective_field(loaded, image, "flatten")
    assert flattened.field.feature_map is None and flattened.feature_levels is None
    with pytest.raises(CNNCoreError) as unknown:
        picture_effective_field(loaded, image, "features.42")
    assert unknown.value.field == "layer"
    with pytest.raises(CNNCoreError) as outside:
        picture_effective_field(loaded, image, "features.3", 10, 0)
    assert outside.value.field == "y"
    with pytest.raises(CNNCoreError) as costly:
        picture_effective_field(loaded, image, max_macs=1000)
    assert costly.value.field == "samples"
