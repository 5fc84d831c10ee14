"""Familiarity score: the stored statistics tell training-like pictures from photos, noise and the
other bundled datasets (AUROC ≥ 0.95 measured here), and the distance is the textbook one."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis
from sklearn.covariance import LedoitWolf

from cnncore.familiarity import (
    PROBES,
    distances,
    familiarity,
    fit_familiarity,
    model_inputs,
    picture_of,
)
from cnncore.familiarity_sets import OUTLIER_SETS, auroc, held_out, outlier_pictures
from cnncore.images import sample_image
from cnncore.models import get_model
from cnncore.weights import LoadedModel, WeightsInfo, load_model

COUNT = 100  # pictures per outlier set (the PERFORMANCE.md table uses 200)


@pytest.fixture(scope="module")
def measured():
    """Per model: distances of the evaluation half of the held-out pictures, the threshold."""
    results = {}
    for name in OUTLIER_SETS:
        loaded = load_model(name)
        meta = loaded.weights.trained
        evaluation = held_out(meta).evaluation
        inside = distances(loaded, model_inputs(loaded.weights, evaluation))
        results[name] = (loaded, inside, meta.familiarity["threshold"], evaluation)
    return results


@pytest.mark.parametrize(
    ("name", "kind"), [(name, kind) for name, kinds in OUTLIER_SETS.items() for kind in kinds]
)
def test_auroc_against_each_outlier_set_is_at_least_095(measured, name, kind):
    loaded, inside, threshold, _pictures = measured[name]
    side = loaded.weights.input_shape[-1]
    pictures = outlier_pictures(kind, COUNT, side, seed=1)
    outside = distances(loaded, model_inputs(loaded.weights, pictures))
    assert auroc(inside, outside) >= 0.95
    assert (outside > threshold).double().mean() >= 0.9


@pytest.mark.parametrize("name", sorted(OUTLIER_SETS))
def test_held_out_training_pictures_are_mostly_familiar(measured, name):
    _loaded, inside, threshold, _pictures = measured[name]
    # the threshold passes 95 % of the other half of the held-out pictures
    assert (inside > threshold).double().mean() <= 0.10


@pytest.mark.parametrize("name", ["tinyvgg", "lenet5", "mlp"])
def test_the_flower_photo_is_unlike_and_a_training_picture_is_not(measured, name):
    loaded, _inside, threshold, pictures = measured[name]
    flower = familiarity(loaded, sample_image("flower"))
    assert flower.unlike and flower.score > threshold == flower.threshold
    assert flower.method == "mahalanobis"
    known = familiarity(loaded, pictures[1])
    assert not known.unlike and known.score <= threshold


def test_models_without_statistics_have_no_familiarity(tmp_path):
    for name in ("autoencoder", "resnet18"):
        assert familiarity(load_model(name), sample_image("flower")) is None
    untrained = load_model("tinyvgg", directory=tmp_path)  # no file there: initialisation
    assert familiarity(untrained, sample_image("flower")) is None


def test_distance_is_scipys_mahalanobis_to_the_nearest_class(measured):
    loaded, _inside, _threshold, held = measured["tinyvgg"]
    stats = loaded.weights.trained.familiarity
    means, precision = np.array(stats["means"]), np.array(stats["precision"])
    pictures = [sample_image("flower"), *held[:3]]
    inputs = model_inputs(loaded.weights, pictures)
    model = loaded.model
    with torch.no_grad():  # the probe layers by hand: block outputs' channel mean and spread
        first = model.block1(inputs)
        second = model.block2(first)
    features = torch.cat(
        [m.flatten(2).mean(2) for m in (first, second)]
        + [m.flatten(2).std(2, unbiased=False) for m in (first, second)],
        1,
    )
    # the module orders each probe's means then spreads: reorder to compare
    order = [*range(0, 10), *range(20, 30), *range(10, 20), *range(30, 40)]
    features = features[:, order].double().numpy()
    expected = [min(mahalanobis(f, mu, precision) for mu in means) for f in features]
    np.testing.assert_allclose(distances(loaded, inputs).numpy(), expected, rtol=1e-9)


def test_fit_gives_class_means_ledoit_wolf_precision_and_a_95_percent_threshold():
    torch.manual_seed(0)
    model = get_model("tinyvgg", num_classes=3, input_size=(32, 32)).eval()
    weights = WeightsInfo("trained", (3, 32, 32), (0.5,) * 3, (0.5,) * 3, 1.0, ("a", "b", "c"))
    loaded = LoadedModel("tinyvgg", model, weights)
    train, held = torch.randn(60, 3, 32, 32), torch.randn(40, 3, 32, 32)
    labels = torch.arange(60) % 3
    record = fit_familiarity(loaded, train, labels, held)

    with torch.no_grad():
        first = model.block1(train)
        second = model.block2(first)
    feats = torch.cat(
        [first.flatten(2).mean(2), first.flatten(2).std(2, unbiased=False),
         second.flatten(2).mean(2), second.flatten(2).std(2, unbiased=False)], 1
    ).double()  # fmt: skip
    means = torch.stack([feats[labels == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(record["means"], means.numpy(), rtol=1e-7)
    reference = LedoitWolf().fit((feats - means[labels]).numpy()).precision_
    np.testing.assert_allclose(record["precision"], reference, rtol=1e-6, atol=1e-9)
    assert record["probes"] == list(PROBES["tinyvgg"]) and record["fit_size"] == 60
    # the threshold is the 95th percentile of the held-out distances
    stored = {**record}
    loaded = LoadedModel(
        "tinyvgg", model, WeightsInfo(**{**weights.__dict__, "trained": _meta(stored)})
    )
    held_distances = distances(loaded, held)
    assert (held_distances <= record["threshold"] + 1e-9).double().mean() == pytest.approx(
        0.95, abs=0.03
    )


def _meta(record):
    from cnncore.weights import TrainedMetadata

    return TrainedMetadata(
        model="tinyvgg", config={}, input_shape=(3, 32, 32), dataset="shapes",
        labels=("a", "b", "c"), mean=(0.5,) * 3, std=(0.5,) * 3, metric="accuracy", score=1.0,
        epochs=1, seed=0, train_size=60, val_size=40, familiarity=record,
    )  # fmt: skip


def test_a_picture_of_a_dataset_image_keeps_its_pixels():
    image = torch.rand(1, 8, 8)
    picture = picture_of(image)
    assert picture.rgb.shape == (8, 8, 3) and picture.rgb.dtype == np.uint8
    expected = (image[0] * 255).round().to(torch.uint8).numpy()
    for channel in range(3):
        np.testing.assert_array_equal(picture.rgb[..., channel], expected)
