"""Fine-tuning through the training engine, as a transfer run does: what is frozen stays the
source's bit for bit (weights and batch norm's running statistics), the rest learns, the new
head has the new task's classes."""

import pytest
import torch
from torch import nn

from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataConfig, load_dataset
from cnncore.training import TrainConfig, Trainer
from cnncore.transfer import (
    freeze_layers,
    hold_statistics,
    output_layer,
    transfer_data,
    transfer_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/cnncore/conftest.py, restored after

FROZEN = ["features.0", "features.3"]  # C1 and C3, as the /train transfer preset freezes them


def _network(**data) -> TrainConfig:
    # ReLU and batch norm: the preset's network; short runs on 8×8 digits grown to 32×32.
    return TrainConfig(model="lenet5", activation="relu", batch_norm=True, epochs=2,
                       batch_size=16, max_steps_per_epoch=3, data=DataConfig(name="digits",
                       **data))  # fmt: skip


def _run(trainer: Trainer) -> Trainer:
    for _ in trainer.run():
        pass
    return trainer


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Pre-trained (a few steps) on digits 0–4 only, saved as a checkpoint."""
    trainer = _run(Trainer(_network(classes=[0, 1, 2, 3, 4], limit=300)))
    return save_checkpoint(trainer, tmp_path_factory.mktemp("pretrain") / "final.safetensors")


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name.startswith(prefix + ".") for prefix in prefixes)


def test_fine_tuning_moves_only_what_is_not_frozen(source):
    checkpoint = load_checkpoint(source)
    before = {k: v.clone() for k, v in checkpoint.model.state_dict().items()}
    config = _network(classes=[5, 6, 7, 8, 9], train_per_class=10, seed=3)
    data = transfer_data(load_dataset(config.data), checkpoint.trained.input_shape, "scale")
    model = transfer_model(checkpoint, data.num_classes, freeze=FROZEN, replace_head=True)
    trainer = Trainer(config, data=data, model=model)
    head = output_layer(trainer.model)
    assert head == "classifier.2" and trainer.model.get_submodule(head).out_features == 5
    started = trainer.model.state_dict()  # the engine starts from the checkpoint, not afresh
    assert all(torch.equal(started[k], v) for k, v in before.items() if not k.startswith(head))
    _run(trainer)
    assert trainer.step == 6
    after = trainer.model.state_dict()
    frozen = [k for k in before if _under(k, FROZEN)]
    # weights, biases, batch norm scale and shift, running mean and variance, batches counted
    assert len(frozen) == (2 + 5) * 2
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
    for name in ("features.6.0.weight", "features.6.1.running_mean", "classifier.0.0.weight"):
        assert not torch.equal(after[name], before[name]), name  # trained, statistics updated
    assert after[f"{head}.weight"].shape == (5, 84)


def test_a_frozen_batch_norm_normalises_with_what_it_learnt(source):
    x = torch.randn(8, 1, 32, 32) * 3 + 1  # statistics far from the digits'
    plain = load_checkpoint(source).model  # loaded in eval mode: the learnt statistics
    norm = plain.get_submodule("features.0.1")
    assert isinstance(norm, nn.BatchNorm2d)
    learnt = norm.running_mean.clone()
    with torch.no_grad():
        reference = plain.features[0](x)
    freeze_layers(plain, ["features.0"])
    plain.train()
    plain(x)  # no gradient is not enough: training mode moves the running statistics
    assert not torch.equal(norm.running_mean, learnt)
    held = load_checkpoint(source).model
    assert hold_statistics(held, ["features.0"]) == ["features.0.1"]
    held.train()
    with torch.no_grad():
        assert torch.equal(held.features[0](x), reference)
    assert torch.equal(held.get_submodule("features.0.1").running_mean, learnt)
    assert held.get_submodule("features.3.1").training  # only the held layer: C3's still learns


def _mnist(classes: list[int], **train) -> TrainConfig:
    data = DataConfig(name="mnist5k", fit="pad", classes=classes, seed=0, **train.pop("data", {}))
    return TrainConfig(model="lenet5", activation="relu", batch_norm=True, data=data,
                       norms_every=1000, **train)  # fmt: skip


def test_pre_trained_features_learn_five_to_nine_from_ten_images_each(tmp_path):
    """The issue's demo in miniature, deterministic (seed 0, one thread): one epoch on 1 000
    images of 0–4, then 8 steps on 10 images of each of 5–9. Fine-tuned from C1 and C3 frozen
    the network already tells 5–9 apart; trained from scratch it is still near chance (1 in 5).
    benchmarks/transfer.py measures the full preset over seeds."""
    source = _run(Trainer(_mnist([0, 1, 2, 3, 4], epochs=1, data={"limit": 1000})))
    checkpoint = load_checkpoint(save_checkpoint(source, tmp_path / "pretrain.safetensors"))
    target = _mnist([5, 6, 7, 8, 9], epochs=2, batch_size=16, data={"train_per_class": 10})
    data = transfer_data(load_dataset(target.data), checkpoint.trained.input_shape, "pad")
    model = transfer_model(checkpoint, 5, freeze=FROZEN, replace_head=True)
    tuned = _run(Trainer(target, data=data, model=model))
    scratch = _run(Trainer(target))
    assert torch.equal(tuned.data.val_labels, scratch.data.val_labels)  # the same held-out set
    assert len(tuned.data.train_labels) == 50 and tuned.step == scratch.step == 8
    assert tuned.val_accuracies[-1] > scratch.val_accuracies[-1] + 0.15
