"""Feature capture against hand-run modules and hooks; levels, atlases, filters, isolation."""

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import correlate2d
from torch import nn

from cnncore.blocks import model_blocks
from cnncore.colormaps import colormap
from cnncore.errors import CNNCoreError
from cnncore.features import (
    ATLAS_GAP,
    Scratch,
    atlas_grid,
    atlas_rgb,
    capture_layers,
    filter_levels,
    filters_rgb,
    handcrafted_feature_maps,
    layer_levels,
    learned_feature_maps,
    picture_names,
    render_picture,
    top_predictions,
    trace_layers,
)
from cnncore.images import DecodedImage, encode_png
from cnncore.models import build_model, list_models
from cnncore.presets import preset_kernels
from cnncore.weights import load_model

torch.manual_seed(0)


def seeded(name: str, **config) -> nn.Module:
    torch.manual_seed(1)
    return build_model(name, **config)


def test_tinyvgg_layers_equal_the_submodules_run_by_hand():
    model = seeded("tinyvgg")
    x = torch.randn(1, 3, 64, 64)
    kept, output = capture_layers(trace_layers(model), x)
    assert list(kept) == [
        "block1.conv1", "block1.relu1", "block1.conv2", "block1.relu2", "block1.pool",
        "block2.conv1", "block2.relu1", "block2.conv2", "block2.relu2", "block2.pool",
        "flatten", "classifier",
    ]  # fmt: skip
    value = x
    with torch.no_grad():
        for name in kept:
            module = model.get_submodule(name)
            value = module(value)
            torch.testing.assert_close(kept[name], value, rtol=0, atol=0)
        torch.testing.assert_close(output, model(x), rtol=0, atol=0)
    # the conv's output is captured before its ReLU: it still has negative values
    assert kept["block1.conv1"].min() < 0 <= kept["block1.relu1"].min()


def test_resnet18_matches_forward_hooks_and_names_the_residual_add():
    model = seeded("resnet18")
    x = torch.randn(1, 3, 64, 64)
    recorded: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, n=name: recorded.setdefault(n, out))
        for name, module in model.named_modules()
        if next(module.children(), None) is None and name
    ]
    try:
        with torch.no_grad():
            reference = model(x)
    finally:
        for handle in handles:
            handle.remove()
    kept, output = capture_layers(trace_layers(model), x)
    torch.testing.assert_close(output, reference)
    assert set(recorded) <= set(kept)
    for name, value in recorded.items():
        torch.testing.assert_close(kept[name], value, msg=name)
    # identity shortcut, visible as a layer: layer1.0 adds its input (the max pool) to bn2
    torch.testing.assert_close(kept["layer1.0.downsample"], kept["maxpool"])
    torch.testing.assert_close(kept["layer1.0.add"], kept["layer1.0.bn2"] + kept["maxpool"])
    torch.testing.assert_close(kept["layer1.0.relu2"], torch.relu(kept["layer1.0.add"]))
    # downsampling shortcut: layer2.0 adds the 1×1-conv projection of layer1's output
    shortcut = kept["layer2.0.downsample.1"]
    assert shortcut.shape == kept["layer2.0.bn2"].shape == (1, 128, 8, 8)
    torch.testing.assert_close(kept["layer2.0.add"], kept["layer2.0.bn2"] + shortcut)


def test_googlenet_inception_cat_joins_the_four_branches():
    model = seeded("googlenet", aux_logits=False)
    kept, _ = capture_layers(trace_layers(model), torch.randn(1, 3, 96, 96))
    branches = ["branch1.relu", "branch2.1.relu", "branch3.1.relu", "branch4.1.relu"]
    joined = torch.cat([kept[f"inception3a.{b}"] for b in branches], dim=1)
    torch.testing.assert_close(kept["inception3a.cat"], joined)
    assert kept["inception3a.cat"].shape[1] == 64 + 128 + 32 + 32


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_traces_without_in_place_modules(name):
    # Capture keeps a reference to each output; an in-place op after it would overwrite it.
    model = build_model(name, device="meta")
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    layers = trace_layers(model)
    assert len(layers.layer_names) == len(set(layers.layer_names)) > 3


def test_per_channel_levels_scale_each_map_from_its_own_range():
    output = torch.randn(5, 4, 6)
    output[3] = 2.5  # a constant map has no contrast
    maps = layer_levels("conv", "Conv2d", output, normalise="per_channel", max_channels=4)
    assert maps.channels == 5 and maps.channels_shown == 4 and maps.shape == (5, 4, 6)
    values = output[:4].numpy().astype(np.float64)
    for c in (0, 1, 2):
        low, high = values[c].min(), values[c].max()
        expected = np.rint((values[c] - low) / (high - low) * 255)
        np.testing.assert_array_equal(maps.levels[c], expected)
        assert maps.ranges[c] == pytest.approx((low, high))
    np.testing.assert_array_equal(maps.levels[3], 0)
    assert maps.ranges[3] == (2.5, 2.5)


def test_per_layer_levels_share_the_whole_layer_range():
    output = torch.randn(70, 3, 3)
    maps = layer_levels("relu", "ReLU", output, normalise="per_layer", max_channels=64)
    assert maps.channels_shown == 64
    low, high = float(output.min()), float(output.max())  # over all 70, not just the 64 shown
    expected = np.rint((output[:64].numpy() - low) / (high - low) * 255)
    assert np.abs(maps.levels.astype(int) - expected).max() <= 1  # float32 rounding at .5
    assert all(r == pytest.approx((low, high)) for r in maps.ranges)
    # the value comes back from a level: low + level / 255 · (high − low)
    back = low + maps.levels[7].astype(np.float64) / 255 * (high - low)
    assert np.abs(back - output[7].numpy()).max() <= (high - low) / 255


def test_a_vector_folds_into_one_near_square_tile():
    maps = layer_levels("fc", "Linear", torch.arange(10.0) + 5, normalise="per_channel")
    assert maps.levels.shape == (1, 3, 4) and maps.shape == (10,)
    assert maps.units and maps.channels == maps.channels_shown == 10 and maps.tiles == 1
    assert maps.ranges == ((5.0, 14.0),)  # the zero padding is not part of the range
    flat = maps.levels.reshape(-1)
    np.testing.assert_array_equal(flat[:10], np.rint(np.arange(10) / 9 * 255))
    np.testing.assert_array_equal(flat[10:], 0)


@pytest.mark.parametrize("normalise", ["per_channel", "per_layer"])
def test_channels_of_one_pixel_fold_into_units(normalise):
    output = torch.randn(120, 1, 1)  # LeNet-5's C5, or the output of global average pooling
    maps = layer_levels("features.6", "Tanh", output, normalise=normalise, max_channels=64)
    assert maps.units and maps.channels_shown == 120 and maps.levels.shape == (1, 11, 11)
    low, high = float(output.min()), float(output.max())
    expected = np.rint((output.flatten().numpy() - low) / (high - low) * 255)
    assert np.abs(maps.levels.reshape(-1)[:120].astype(int) - expected).max() <= 1


def test_unknown_normalisation_names_its_field():
    with pytest.raises(CNNCoreError) as info:
        layer_levels("x", "ReLU", torch.zeros(1, 2, 2), normalise="global")
    assert info.value.field == "normalise"


@pytest.mark.parametrize("cmap", ["viridis", "magma", "gray"])
def test_atlas_png_decodes_to_the_coloured_levels_with_white_gaps(cmap):
    rng = np.random.default_rng(3)
    levels = rng.integers(0, 256, size=(7, 5, 6), dtype=np.uint8)
    png = encode_png(atlas_rgb(levels, cmap))
    atlas = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    rows, cols = atlas_grid(7)
    assert (rows, cols) == (3, 3)
    assert atlas.shape == (rows * 6 - ATLAS_GAP, cols * 7 - ATLAS_GAP, 3)
    lut = colormap(cmap)
    for i in range(7):
        top, left = (i // cols) * 6, (i % cols) * 7
        np.testing.assert_array_equal(atlas[top : top + 5, left : left + 6], lut[levels[i]])
    assert (atlas[5, :] == 255).all() and (atlas[:, 6] == 255).all()
    assert (atlas[12:, 14:] == 255).all()  # the two unused tiles stay blank


def test_filter_levels_share_one_scale_with_zero_at_mid_grey():
    weight = torch.zeros(2, 3, 2, 2)
    weight[0, 0, 0, 0] = 2.0  # strongest positive red tap → 255
    weight[1, 2, 1, 1] = -2.0  # strongest negative blue tap → 0
    weight[1, 1, 0, 1] = 1.0
    pictures = filter_levels(weight)
    assert pictures.shape == (2, 2, 2, 3)
    assert pictures[0, 0, 0, 0] == 255 and pictures[1, 1, 1, 2] == 0
    assert pictures[1, 0, 1, 1] == round(1 / 2 * 127.5 + 127.5)
    assert pictures[0, 1, 1, 1] in (127, 128)
    grey = filter_levels(torch.tensor([[[[1.0, -1.0]]]]))
    np.testing.assert_array_equal(grey[0, 0], [[255] * 3, [0] * 3])


def test_filters_rgb_uses_the_first_convolution():
    model = seeded("lenet5")
    atlas = filters_rgb(model)
    rows, cols = atlas_grid(6)
    assert atlas.shape == (rows * 6 - 1, cols * 6 - 1, 3)
    assert filters_rgb(build_model("mlp")) is None


def test_top_predictions_are_softmax_top_k():
    logits = torch.tensor([0.5, 3.0, -1.0, 2.0])
    probs = torch.softmax(logits, 0)
    got = top_predictions(logits, ["a", "b", "c", "d"], k=3)
    assert [p.label for p in got] == ["b", "d", "a"]
    assert [p.prob for p in got] == pytest.approx(probs[[1, 3, 0]].tolist())


def test_two_threads_never_see_each_others_maps():
    model = seeded("tinyvgg")
    layers = trace_layers(model)
    inputs = [torch.randn(1, 3, 64, 64) for _ in range(2)]
    expected = [capture_layers(layers, x)[0] for x in inputs]
    barrier = threading.Barrier(2)
    failures: list[str] = []

    def worker(index: int) -> None:
        for _ in range(15):
            barrier.wait()  # both threads run through the shared graph at the same moment
            kept, _ = capture_layers(layers, inputs[index])
            for name, value in kept.items():
                if not torch.equal(value, expected[index][name]):
                    failures.append(f"thread {index}: {name}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert not torch.equal(expected[0]["block1.conv1"], expected[1]["block1.conv1"])


def picture(height: int = 40, width: int = 50) -> DecodedImage:
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return DecodedImage(rgb=rgb, format="PNG", mode="RGB", orientation=1)


def test_handcrafted_maps_equal_scipy_correlation_per_channel():
    kernels = tuple(k for k in preset_kernels() if k.name in ("sobel_x", "gaussian", "emboss"))
    result = handcrafted_feature_maps("tinyvgg", picture(30, 30), kernels, size=30)
    assert [layer.name for layer in result.layers] == ["sobel_x", "gaussian", "emboss"]
    assert [s.step for s in result.preprocessing] == ["original", "resize", "crop"]
    pixels = picture(30, 30).rgb.astype(np.float64) / 255
    for layer, kernel in zip(result.layers, kernels, strict=True):
        assert layer.shape == (3, 30, 30)
        for c in range(3):
            # "symm" mirrors with the edge pixel first: for 3×3 that is edge replication
            ref = correlate2d(pixels[..., c], kernel.values.numpy(), mode="same", boundary="symm")
            low, high = layer.ranges[c]
            assert (low, high) == pytest.approx((ref.min(), ref.max()), abs=1e-5)
            expected = np.rint((ref - ref.min()) / (ref.max() - ref.min()) * 255)
            assert np.abs(layer.levels[c].astype(int) - expected).max() <= 1
    assert result.filters.shape == (2 * 4 - 1, 2 * 4 - 1, 3) and result.predictions is None


def test_learned_maps_for_an_initialised_model_have_no_predictions(tmp_path):
    loaded = load_model("lenet5", directory=tmp_path)  # empty folder: seeded initialisation
    assert loaded.weights.source == "initialisation"
    result = learned_feature_maps(loaded, trace_layers(loaded.model), picture())
    assert result.predictions is None and result.input_shape == (1, 32, 32)
    assert [s.step for s in result.preprocessing][-2:] == ["grayscale", "normalise"]
    assert result.layers[0].name == "features.0" and result.layers[0].shape == (6, 28, 28)
    assert result.layers[-1].shape == (10,)
    assert result.filters is not None and result.nbytes > 0

    names = picture_names(result)
    assert names[:2] == ["_input_original", "_input_resize"] and "_filters" in names
    assert names[-len(result.layers) :] == [layer.name for layer in result.layers]
    first = result.layers[0]
    np.testing.assert_array_equal(
        render_picture(result, "features.0", "gray"), atlas_rgb(first.levels, "gray")
    )
    np.testing.assert_array_equal(render_picture(result, "_filters", "gray"), result.filters)
    assert render_picture(result, "_input_crop", "gray").shape == (32, 32, 3)
    with pytest.raises(KeyError):
        render_picture(result, "../etc/passwd", "gray")
    # one channel at full size: exactly that tile of the atlas, no gaps
    second = render_picture(result, "features.0", "magma", channel=1)
    np.testing.assert_array_equal(second, colormap("magma")[first.levels[1]])
    for name, channel in (("features.0", 6), ("features.0", -1), ("_filters", 0)):
        with pytest.raises(KeyError):
            render_picture(result, name, "gray", channel=channel)


def test_scratch_buffer_gives_the_same_levels_and_survives_non_finite_values():
    scratch = Scratch()
    big, small = torch.randn(8, 20, 20), torch.randn(3, 5, 5)
    for output in (big, small, big):
        plain = layer_levels("x", "Conv2d", output)
        lent = layer_levels("x", "Conv2d", output, scratch=scratch)
        np.testing.assert_array_equal(plain.levels, lent.levels)
    broken = torch.randn(2, 4, 4)
    broken[0, 1, 1] = float("nan")
    broken[1, 0, 0] = float("inf")
    maps = layer_levels("x", "Conv2d", broken, scratch=scratch)
    assert maps.levels.dtype == np.uint8 and maps.levels.shape == (2, 4, 4)


class _BranchesOnValues(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if y.sum() > 0 else -y


def test_a_model_fx_cannot_trace_is_refused_naming_the_model_and_keeps_its_mode():
    model = _BranchesOnValues().train()
    for trace in (trace_layers, lambda m: model_blocks(m, (1, 8, 8))):
        with pytest.raises(CNNCoreError, match="cannot be traced by torch.fx") as info:
            trace(model)
        assert info.value.field == "model"
        assert model.training  # the eval() for tracing is undone
