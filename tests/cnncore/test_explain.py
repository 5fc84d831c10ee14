"""Explanations checked by formula on a one-conv network, against Captum where it has the
method, and on the trained LeNet-5: a digit's Grad-CAM lies on its strokes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnncore.data import DataConfig, load_dataset
from cnncore.errors import CNNCoreError
from cnncore.explain import (
    cam_maps,
    default_target_layer,
    explain,
    integrated_gradients,
    occlusion,
    occlusion_plan,
)
from cnncore.features import trace_layers
from cnncore.unit import capture_activations
from cnncore.weights import load_model


class _OneConv(nn.Module):
    """x → conv (K maps) → global mean → linear: ∂S_t/∂A_k = W[t, k] / (h·w) everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):  # noqa: ANN001, ANN201, D102
        return self.fc(self.flatten(self.pool(self.conv(x))))


@pytest.fixture(scope="module")
def one_conv():
    torch.manual_seed(3)
    model = _OneConv().double().eval()
    return model, trace_layers(model), torch.randn(1, 2, 5, 6, dtype=torch.float64)


def test_cams_and_saliency_by_formula(one_conv) -> None:
    model, layers, x = one_conv
    target = 2
    got = explain(layers, x, target=target, layer="conv")
    a = model.conv(x)[0].detach()
    g = (model.fc.weight[target] / 30).detach()  # ∂S/∂A_k, the same at every cell
    expected_gradcam = torch.relu((g[:, None, None] * a).sum(0))
    expected_layercam = torch.relu((torch.relu(g)[:, None, None] * a).sum(0))
    alpha = g**2 / (2 * g**2 + a.sum((1, 2)) * g**3)  # constant over the map
    expected_pp = torch.relu(((30 * alpha * torch.relu(g))[:, None, None] * a).sum(0))
    for name, expected in [("gradcam", expected_gradcam), ("layercam", expected_layercam),
                           ("gradcam_pp", expected_pp)]:  # fmt: skip
        np.testing.assert_allclose(got.cams[name], expected.numpy(), rtol=1e-5, atol=1e-7)
    # ∂S/∂x: the constant gradient on A sent back through the convolution
    grad_a = g[None, :, None, None].expand(1, 3, 5, 6)
    grad_x = F.conv_transpose2d(grad_a, model.conv.weight.detach(), padding=1)[0]
    saliency = grad_x.abs().amax(0)
    np.testing.assert_allclose(got.maps["saliency"], (saliency / saliency.max()).numpy(), rtol=1e-5)
    assert got.target == target
    assert got.score == pytest.approx(float(model(x)[0, target].detach()))


def test_grad_cam_matches_captum_on_tinyvgg() -> None:
    from captum.attr import LayerGradCam

    torch.manual_seed(4)
    loaded = load_model("tinyvgg")
    layers = trace_layers(loaded.model)
    x = torch.randn(1, *loaded.weights.input_shape)
    got = explain(layers, x, layer="block2.relu2")  # the top class
    private = copy.deepcopy(loaded.model)  # Captum hooks its layer: never on the shared model
    reference = (
        LayerGradCam(private, private.block2.relu2)
        .attribute(x, target=got.target, relu_attributions=True)
        .detach()
    )
    assert float(reference.sum()) > 0
    np.testing.assert_allclose(got.cams["gradcam"], reference[0, 0].numpy(),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_occlusion_matches_captum(one_conv) -> None:
    from captum.attr import Occlusion

    model, layers, x = one_conv
    plan = occlusion_plan(5, 6, 2, 1)
    seen = []
    got = occlusion(layers, x, 1, plan, batch=4, progress=lambda d, n: seen.append((d, n)) or True)
    reference = Occlusion(model).attribute(
        x, sliding_window_shapes=(2, 2, 2), strides=(2, 1, 1), baselines=0, target=1
    )
    np.testing.assert_allclose(got, reference[0, 0].detach().numpy(), rtol=1e-5, atol=1e-6)
    assert plan.windows == 4 * 5 and seen[-1] == (20, 20) and len(seen) == 5


def test_occlusion_stops_when_asked(one_conv) -> None:
    _, layers, x = one_conv
    assert occlusion(layers, x, 0, occlusion_plan(5, 6, 2, 1), batch=3,
                     progress=lambda done, _total: done < 6) is None  # fmt: skip


def test_integrated_gradients_of_a_linear_model_is_input_times_weight() -> None:
    """For S = w·x + b, IG from a zero baseline is exactly x ⊙ w (completeness)."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double().eval()
    layers = trace_layers(model)
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    got = integrated_gradients(layers, x, 2, steps=8)
    expected = (x[0, 0] * model[1].weight[2].reshape(3, 4)).abs().detach()
    np.testing.assert_allclose(got, (expected / expected.max()).numpy(), rtol=1e-6)


def test_refusals_name_their_field(one_conv) -> None:
    _, layers, x = one_conv
    with pytest.raises(CNNCoreError) as refused:
        explain(layers, x, target=4, layer="conv")
    assert refused.value.field == "target" and refused.value.code == "unknown_class"
    with pytest.raises(CNNCoreError) as refused:
        explain(layers, x, layer="nope")
    assert refused.value.field == "layer"
    with pytest.raises(CNNCoreError) as refused:
        explain(layers, x, layer="fc")
    assert refused.value.code == "no_spatial_layer"
    with pytest.raises(CNNCoreError) as refused:
        occlusion_plan(5, 6, 7, 1)
    assert refused.value.field == "patch"


def test_cams_of_zero_gradients_are_zero() -> None:
    maps = cam_maps(torch.rand(3, 4, 4), torch.zeros(3, 4, 4))
    assert all(float(m.abs().sum()) == 0 for m in maps.values())


def test_lenet_grad_cam_lies_on_the_strokes_of_held_out_digits() -> None:
    """Share of each map's mass inside the bounding box of the digit's strokes (pixels > 0.3),
    on validation digits of the bundled LeNet-5 (never trained on; all 40 classified right).

    Measured (docs/PERFORMANCE.md has the table): at the first subsampling layer (14×14)
    Grad-CAM puts 0.55 of its mass on the strokes' box; at the deepest spatial layer (5×5,
    the default) Grad-CAM++ puts 0.74 there, while plain Grad-CAM spreads over the border
    (0.35): tanh maps carry a constant level on the blank background, and averaged gradients
    weigh it in. A uniform map would put ~0.4 inside."""
    loaded = load_model("lenet5")
    layers = trace_layers(loaded.model)
    weights = loaded.weights
    split = load_dataset(DataConfig(name="mnist5k", image_size=32, fit="pad", seed=0))
    mean, std = torch.tensor(weights.mean)[:, None, None], torch.tensor(weights.std)[:, None, None]
    probe = capture_activations(layers, (split.val_images[:1] - mean) / std)
    default = default_target_layer(layers, {n: tuple(v.shape) for n, v in probe.values.items()})
    assert default == "features.5"
    shares: dict[tuple[str, str], list[float]] = {}
    for image, label in zip(split.val_images[:40], split.val_labels[:40], strict=True):
        rows, cols = np.nonzero(image[0].numpy() > 0.3)
        for layer, method in [("features.2", "gradcam"), (default, "gradcam_pp")]:
            found = explain(layers, ((image - mean) / std)[None], layer=layer)
            assert found.target == int(label)
            cam = found.maps[method]
            box = cam[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            shares.setdefault((layer, method), []).append(float(box.sum() / cam.sum()))
    gradcam = np.array(shares[("features.2", "gradcam")])
    gradcam_pp = np.array(shares[(default, "gradcam_pp")])
    assert gradcam.mean() > 0.5 and (gradcam > 0.5).mean() > 0.5, gradcam
    assert gradcam_pp.mean() > 0.6 and (gradcam_pp > 0.5).mean() >= 0.9, gradcam_pp
