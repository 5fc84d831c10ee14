"""Weights: bundled safetensors with metadata, local state dicts (weights_only), seeded init."""

import pickle

import pytest
import torch

from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError, get_model
from cnncore.pretrained import load_pretrained
from cnncore.pretrained_files import import_weights
from cnncore.weights import TrainedMetadata, load_model, read_weights, save_weights

META = TrainedMetadata(
    model="tinyvgg",
    config={"num_classes": 3, "input_size": [32, 32]},
    input_shape=(3, 32, 32),
    dataset="shapes",
    labels=("circle", "square", "triangle"),
    mean=(0.1, 0.2, 0.3),
    std=(0.4, 0.5, 0.6),
    metric="accuracy",
    score=0.75,
    epochs=2,
    seed=7,
    train_size=80,
    val_size=20,
)


def test_bundled_file_round_trips_tensors_and_metadata(tmp_path):
    torch.manual_seed(3)
    model = get_model("tinyvgg", num_classes=3, input_size=(32, 32))
    save_weights(model, tmp_path / "tinyvgg.safetensors", META)
    tensors, meta = read_weights(tmp_path / "tinyvgg.safetensors")
    assert meta == TrainedMetadata(
        **{**META.__dict__, "config": {"num_classes": 3, "input_size": (32, 32)}}
    )
    for key, value in model.state_dict().items():
        torch.testing.assert_close(tensors[key], value, rtol=0, atol=0)

    loaded = load_model("tinyvgg", directory=tmp_path)
    assert loaded.weights.source == "trained" and loaded.weights.file == "tinyvgg.safetensors"
    assert loaded.weights.labels == META.labels and loaded.weights.input_shape == (3, 32, 32)
    assert loaded.weights.mean == META.mean and not loaded.model.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x))


def test_initialisation_is_seeded_and_leaves_the_global_generator_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = load_model("lenet5", directory=tmp_path)
    assert torch.equal(torch.random.get_rng_state(), before)
    second = load_model("lenet5", directory=tmp_path)
    assert first.weights.source == "initialisation" and first.weights.labels is None
    for (key, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key


def test_imagenet_sized_models_use_the_torchvision_recipe(tmp_path):
    loaded = load_model("alexnet", directory=tmp_path)
    assert loaded.weights.input_shape == (3, 224, 224)
    assert loaded.weights.resize_ratio == pytest.approx(256 / 224)
    assert loaded.weights.mean == (0.485, 0.456, 0.406)


def test_a_local_state_dict_is_imported_with_weights_only(tmp_path):
    torch.manual_seed(5)
    source = get_model("lenet5")
    path = tmp_path / "lenet.pt"
    torch.save(source.state_dict(), path)
    import_weights(tmp_path / "data", "lenet5", path)
    loaded = load_pretrained("lenet5", "imagenet", directory=tmp_path / "data")
    assert loaded.weights.source == "imported" and loaded.weights.file == "lenet5.safetensors"
    assert loaded.weights.pretrained.original_file == "lenet.pt"
    torch.testing.assert_close(loaded.model.features[0].weight, source.features[0].weight)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"features.0.weight": Payload()}))
    with pytest.raises(CNNCoreError, match="cannot be read as weights") as info:
        import_weights(tmp_path / "data", "lenet5", path)
    assert info.value.field == "file" and info.value.code == "weights_file_unreadable"
    assert "code ran" not in capsys.readouterr().out
    assert not list((tmp_path / "data").iterdir())


def test_a_state_dict_for_another_model_is_refused(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(get_model("mlp").state_dict(), path)
    with pytest.raises(CNNCoreError, match="this file's layers are not lenet5's"):
        import_weights(tmp_path / "data", "lenet5", path)


def test_unknown_model_and_damaged_file(tmp_path):
    with pytest.raises(UnknownModelError):
        load_model("lenet6", directory=tmp_path)
    (tmp_path / "mlp.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CNNCoreError, match="cannot be read"):
        load_model("mlp", directory=tmp_path)
