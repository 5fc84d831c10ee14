"""The training engine on tiny runs: values, not just shapes (loss falls, runs repeat bit for
bit, early stopping restores the best weights, divergence stops the run, zeros stay symmetric)."""

import base64
import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from cnncore import metrics
from cnncore.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from cnncore.data import DataConfig, DataSplit, load_dataset
from cnncore.datasets.augment import AugmentConfig
from cnncore.errors import CNNCoreError
from cnncore.features import learned_feature_maps, trace_layers
from cnncore.images import decode_image, encode_png
from cnncore.model_options import (
    add_batch_norm,
    add_dropout,
    build_classifier,
    fit_input_size,
    initialise_weights,
    replace_activations,
)
from cnncore.optim import build_optimizer, build_schedule, focal_loss, lr_factor, make_loss
from cnncore.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/cnncore/conftest.py


@pytest.fixture(scope="module")
def digits() -> DataSplit:
    return load_dataset(DataConfig(name="digits", limit=600, seed=0))


def _config(**overrides) -> TrainConfig:
    base = {"model": "mlp", "epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 3e-3,
            "norms_every": 4, "max_misclassified": 4}  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _events(config: TrainConfig, data: DataSplit, **kwargs) -> list[dict]:
    return list(Trainer(config, data=data, **kwargs).run())


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind]


# --- learning ----------------------------------------------------------------------------------


def test_loss_falls_and_accuracy_beats_chance_on_digits(digits):
    events = _events(_config(epochs=3), digits)
    assert [e["kind"] for e in events[:2]] == ["start", "step"] and events[-1]["kind"] == "end"
    epochs = _of(events, "epoch")
    assert len(epochs) == 3 and events[-1]["reason"] == "completed"
    assert epochs[0]["train_loss"] > epochs[1]["train_loss"] > epochs[2]["train_loss"]
    assert epochs[-1]["val_accuracy"] > 0.8  # chance is 0.1
    steps = _of(events, "step")
    assert steps[0]["loss"] > steps[-1]["loss"]
    assert len(steps) == 3 * math.ceil(len(digits.train_labels) / 32)
    assert all(s["images_per_second"] > 0 and s["eta_s"] >= 0 for s in steps)
    assert steps[-1]["eta_s"] > 0  # the last validation pass is still ahead
    assert epochs[-1]["eta_s"] == 0.0 and epochs[0]["eta_s"] > 0
    # every event is strict JSON (no NaN, no tensors)
    for event in events:
        json.dumps(event, allow_nan=False)


def test_epoch_metrics_are_the_real_values(digits):
    trainer = Trainer(_config(epochs=1, model="lenet5"), data=digits)
    events = list(trainer.run())
    epoch = _of(events, "epoch")[0]
    model = trainer.model.eval()
    val_x = trainer._normalise(trainer.data.val_images)
    with torch.no_grad():
        logits = model(val_x)
    predicted = logits.argmax(1)
    assert epoch["val_loss"] == pytest.approx(
        F.cross_entropy(logits, digits.val_labels).item(), rel=1e-5
    )
    assert epoch["val_accuracy"] == pytest.approx(
        (predicted == digits.val_labels).float().mean().item()
    )
    assert (
        epoch["confusion"]
        == sk_confusion_matrix(digits.val_labels, predicted, labels=range(10)).tolist()
    )
    wrong = torch.nonzero(predicted != digits.val_labels).flatten()[:4].tolist()
    assert [m["index"] for m in epoch["misclassified"]] == wrong
    first = epoch["misclassified"][0]
    assert (
        first["predicted"] == predicted[wrong[0]].item()
        and first["true"] == digits.val_labels[wrong[0]].item()
    )
    # the misclassified image is the un-normalised pixels, as uint8 PNG
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(first["png"]))))
    expected = (
        (trainer.data.val_images[wrong[0], 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    )
    assert np.array_equal(png, expected)
    # LeNet-5 was given 32×32 images: the 8×8 digits were grown to fit it
    start = events[0]
    assert start["dataset"]["input_shape"] == [1, 32, 32]
    assert start["model"]["params"] == sum(p.numel() for p in trainer.model.parameters())
    assert epoch["filters"]["shape"] == [6, 1, 5, 5]
    assert [h["layer"] for h in epoch["histograms"]] == start["model"]["layers"]


def test_step_events_carry_the_newest_layer_norms(digits):
    events = _events(_config(epochs=1, log_every=3, norms_every=4, max_steps_per_epoch=12), digits)
    steps = _of(events, "step")
    assert [s["step"] for s in steps] == [3, 6, 9, 12]
    # norms sampled at steps 1 (the first), 4, 8 and 12 (the epoch's last) ride on the next
    # event: 3, 6, 9 and 12
    assert [s["grad_norms"] is not None for s in steps] == [True, True, True, True]
    short = _events(_config(epochs=1, log_every=1, norms_every=4, max_steps_per_epoch=6), digits)
    later = _of(short, "step")
    assert [s["grad_norms"] is not None for s in later] == [True, False, False, True, False, True]
    assert _of(short, "epoch")[0]["grad_norms"] == later[-1]["grad_norms"]  # the epoch's end
    layers = events[0]["model"]["layers"]
    assert list(steps[1]["grad_norms"]) == layers == list(steps[1]["weight_norms"])
    assert all(v > 0 for v in steps[1]["grad_norms"].values())
    # an event over 3 steps reports the mean of those steps (the same seeded run, logged
    # every step, gives the single values)
    single = _of(_events(_config(epochs=1, max_steps_per_epoch=12), digits), "step")
    for event, first in zip(steps, range(0, 12, 3), strict=True):
        group = single[first : first + 3]
        assert event["loss"] == pytest.approx(np.mean([s["loss"] for s in group]), rel=1e-12)
        assert event["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in group]))


# --- reproducibility ---------------------------------------------------------------------------


def _strip_timing(events: list[dict]) -> list[dict]:
    timing = {"images_per_second", "elapsed_s", "eta_s"}
    return [{k: v for k, v in e.items() if k not in timing} for e in events]


def test_same_seed_repeats_bit_for_bit_and_another_seed_does_not(digits):
    config = _config(dropout=0.3, augment=AugmentConfig(shift=1, rotation=10, flip=True,
                                                         brightness=0.1), seed=11)  # fmt: skip
    runs = []
    for _ in range(2):
        trainer = Trainer(config, data=digits)
        runs.append((_strip_timing(list(trainer.run())), trainer.model.state_dict()))
    (events_a, state_a), (events_b, state_b) = runs
    assert events_a == events_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    other = Trainer(_config(dropout=0.3, seed=12), data=digits)
    other_events = _strip_timing(list(other.run()))
    assert _of(other_events, "step")[0]["loss"] != _of(events_a, "step")[0]["loss"]


# --- early stopping, divergence, stop and pause ------------------------------------------------


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    # Validation labels shuffled: the better the model fits the training digits, the worse its
    # validation loss; with patience 1 the run must stop and go back to its best epoch.
    shuffled = digits.val_labels[
        torch.randperm(len(digits.val_labels), generator=torch.Generator().manual_seed(0))
    ]
    data = DataSplit(digits.name, digits.train_images, digits.train_labels, digits.val_images,
                     shuffled, digits.class_names, digits.mean, digits.std)  # fmt: skip
    trainer = Trainer(_config(epochs=8, early_stopping=1, lr=1e-2), data=data)
    events = list(trainer.run())
    stop = _of(events, "early_stop")
    assert len(stop) == 1
    epochs = _of(events, "epoch")
    val_losses = [e["val_loss"] for e in epochs]
    best = min(range(len(val_losses)), key=val_losses.__getitem__)
    assert stop[0]["best_epoch"] == best + 1 and len(epochs) == best + 2 < 8
    end = events[-1]
    assert end["reason"] == "early_stop" and end["restored_best"]
    with torch.no_grad():
        logits = trainer.model.eval()(trainer._normalise(data.val_images))
    assert F.cross_entropy(logits, shuffled).item() == pytest.approx(min(val_losses), rel=1e-6)


def test_divergence_is_reported_and_stops_training(digits):
    poisoned = digits.train_images.clone()
    poisoned[:] = float("nan")
    data = DataSplit(digits.name, poisoned, digits.train_labels, digits.val_images,
                     digits.val_labels, digits.class_names, digits.mean, digits.std)  # fmt: skip
    events = _events(_config(), data)
    assert [e["kind"] for e in events] == ["start", "diverged", "end"]
    assert events[1]["loss"] == "nan" and events[1]["step"] == 1
    assert events[-1]["reason"] == "diverged"
    # a learning rate far too large blows up on clean data too
    blown = _events(
        _config(optimizer="sgd", lr=10.0, init="normal", init_std=3.0, epochs=3), digits
    )
    assert _of(blown, "diverged") and blown[-1]["reason"] == "diverged"
    assert blown[-2]["kind"] == "diverged"
    for event in blown:
        json.dumps(event, allow_nan=False)


def test_should_stop_and_should_pause_are_obeyed(digits):
    trainer = Trainer(_config(), data=digits, should_stop=lambda: trainer.step >= 3)
    events = list(trainer.run())
    assert events[-1]["reason"] == "stopped" and events[-1]["step"] == 3
    assert not _of(events, "epoch")
    polls = iter([False, True, True, True] + [False] * 1000)
    paused = _events(
        _config(epochs=1), digits, should_pause=lambda: next(polls), pause_poll_s=0.001
    )
    kinds = [e["kind"] for e in paused]
    assert kinds.index("paused") == 2 and kinds.index("resumed") == 3  # after the first step
    assert paused[-1]["reason"] == "completed"


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_stop_asked_during_the_last_step_ends_the_run_as_stopped(digits, epochs):
    """The stop arrives while the final step of the run (or of the first epoch) computes:
    seen after that step, the run ends stopped, without evaluating that epoch."""
    config = _config(epochs=epochs, max_steps_per_epoch=4)
    trainer = Trainer(config, data=digits, should_stop=lambda: trainer.step >= 4)
    events = list(trainer.run())
    assert events[-1]["reason"] == "stopped" and events[-1]["step"] == 4
    assert not _of(events, "epoch") and trainer.epochs_completed == 0
    assert len(_of(events, "step")) == 4


# --- model switches ----------------------------------------------------------------------------


def test_zero_init_keeps_every_unit_of_a_layer_identical(digits):
    config = _config(model="lenet5", init="zeros", activation="sigmoid", epochs=1,
                     max_steps_per_epoch=10, optimizer="sgd", lr=0.5)  # fmt: skip
    trainer = Trainer(config, data=digits)
    list(trainer.run())
    conv1 = trainer.model.features[0].weight
    f6 = trainer.model.classifier[0].weight
    assert conv1.abs().sum() > 0 and f6.abs().sum() > 0  # they did learn something…
    assert torch.equal(conv1, conv1[:1].expand_as(conv1))  # …but all 6 filters the same
    assert torch.equal(f6, f6[:1].expand_as(f6))  # and all 84 units of F6 the same
    default = Trainer(_config(model="lenet5", epochs=1, max_steps_per_epoch=2), data=digits)
    w = default.model.features[0].weight
    assert not torch.equal(w, w[:1].expand_as(w))


def test_inits_have_their_published_spread():
    layer = nn.Linear(400, 300)
    initialise_weights(layer, "xavier")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 700), rel=0.05)
    initialise_weights(layer, "he")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    initialise_weights(layer, "normal", std=0.2)
    assert layer.weight.std().item() == pytest.approx(0.2, rel=0.05)
    assert layer.bias.abs().sum() == 0
    with pytest.raises(CNNCoreError):
        initialise_weights(layer, "orthogonal")


def test_batch_norm_dropout_and_activation_switches():
    lenet = build_classifier("lenet5", (1, 32, 32), 10)
    tanh_count = sum(isinstance(m, nn.Tanh) for m in lenet.modules())
    assert replace_activations(lenet, "relu") == tanh_count == 4
    assert not any(isinstance(m, nn.Tanh) for m in lenet.modules())
    assert add_batch_norm(lenet) == 4  # three convs and F6, not the output layer
    assert add_batch_norm(lenet) == 0  # idempotent
    assert add_dropout(lenet, 0.5) == 2  # before F6 and before the output
    assert add_dropout(lenet, 0.25) == 2 and all(
        m.p == 0.25 for m in lenet.modules() if isinstance(m, nn.Dropout)
    )
    x = torch.randn(8, 1, 32, 32)
    lenet.train()
    assert not torch.equal(lenet(x), lenet(x))  # dropout masks differ
    lenet.eval()
    assert torch.equal(lenet(x), lenet(x))
    bn = next(m for m in lenet.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.running_mean.abs().sum() > 0  # the training-mode passes updated it
    mlp = build_classifier("mlp", (1, 8, 8), 10, dropout=0.5)
    # the MLP's first layer reads raw pixels: no dropout there
    assert sum(isinstance(m, nn.Dropout) for m in mlp.modules()) == 2
    assert fit_input_size("lenet5", 1, 8) == 32 and fit_input_size("lenet5", 1, 40) == 40
    assert fit_input_size("tinyvgg", 3, 8) == 16 and fit_input_size("mlp", 1, 8) == 8
    with pytest.raises(CNNCoreError):
        replace_activations(lenet, "swish2")


# --- optimisers, schedules, losses -------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_every_optimizer_learns(digits, name):
    # RMSProp with momentum 0.9 moves about 10 times further per step than without it.
    lr = {"sgd": 0.2, "momentum": 0.05, "nesterov": 0.05, "rmsprop": 3e-4}.get(name, 3e-3)
    events = _events(_config(optimizer=name, lr=lr, epochs=2), digits)
    steps = _of(events, "step")
    assert np.mean([s["loss"] for s in steps[-5:]]) < 0.6 * np.mean([s["loss"] for s in steps[:5]])


def test_optimizer_settings_reach_torch():
    params = [nn.Parameter(torch.zeros(2))]
    nesterov = build_optimizer("nesterov", params, 0.1, momentum=0.8, weight_decay=1e-4)
    assert isinstance(nesterov, torch.optim.SGD)
    group = nesterov.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.8 and group["weight_decay"] == 1e-4
    assert build_optimizer("sgd", params, 0.1).param_groups[0]["momentum"] == 0
    assert isinstance(build_optimizer("adamw", params, 0.1), torch.optim.AdamW)
    with pytest.raises(CNNCoreError) as err:
        build_optimizer("lion", params, 0.1)
    assert err.value.field == "optimizer"
    with pytest.raises(CNNCoreError) as err:
        build_optimizer("adam", params, -1.0)
    assert err.value.field == "lr"


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_rmsprop_honours_momentum_step_for_step_like_torch(momentum):
    """RMSProp with momentum (torch's form: v ← μ·v + g/√(E[g²]+ε), θ ← θ − lr·v), checked
    against torch.optim.RMSprop on the same random problem for ten steps."""
    torch.manual_seed(4)
    start, inputs, targets = torch.randn(5, 3), torch.randn(16, 3), torch.randn(16, 5)
    ours, theirs = nn.Parameter(start.clone()), nn.Parameter(start.clone())
    optimizer = build_optimizer("rmsprop", [ours], 0.01, momentum=momentum, weight_decay=1e-3)
    oracle = torch.optim.RMSprop([theirs], lr=0.01, momentum=momentum, weight_decay=1e-3)
    assert optimizer.param_groups[0]["momentum"] == momentum
    for _ in range(10):
        for param, opt in ((ours, optimizer), (theirs, oracle)):
            opt.zero_grad()
            F.mse_loss(inputs @ param.T, targets).backward()
            opt.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=1e-6)
    plain = nn.Parameter(start.clone())
    no_momentum = build_optimizer("rmsprop", [plain], 0.01, momentum=0.0, weight_decay=1e-3)
    for _ in range(10):
        no_momentum.zero_grad()
        F.mse_loss(inputs @ plain.T, targets).backward()
        no_momentum.step()
    assert (momentum == 0) == torch.equal(plain.detach(), ours.detach())


def _torch_lrs(scheduler_factory, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    scheduler = scheduler_factory(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_schedules_match_torch_schedulers():
    steps_per_epoch, epochs = 7, 6
    total = steps_per_epoch * epochs
    ours_step = _torch_lrs(lambda o: build_schedule("step", o, steps_per_epoch, epochs,
                                                    step_size=2, gamma=0.5), total)  # fmt: skip
    torch_step = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.StepLR(o, 2 * steps_per_epoch, 0.5), total
    )
    assert ours_step == pytest.approx(torch_step, rel=1e-12)
    ours_cos = _torch_lrs(lambda o: build_schedule("cosine", o, steps_per_epoch, epochs), total)
    torch_cos = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, total), total)
    assert ours_cos == pytest.approx(torch_cos, rel=1e-9, abs=1e-12)
    assert lr_factor("constant", 99, 7, 42, 1, 0.1) == 1.0


def test_learning_rate_in_events_follows_the_schedule(digits):
    events = _events(_config(schedule="step", step_size=1, gamma=0.5, optimizer="sgd", lr=0.1,
                             epochs=2, max_steps_per_epoch=3), digits)  # fmt: skip
    assert [s["lr"] for s in _of(events, "step")] == pytest.approx([0.1] * 3 + [0.05] * 3)


def test_focal_loss_matches_its_formula_and_reduces_to_cross_entropy():
    logits = torch.randn(16, 5, dtype=torch.float64)
    target = torch.randint(0, 5, (16,))
    assert focal_loss(logits, target, 0.0).item() == pytest.approx(
        F.cross_entropy(logits, target).item()
    )
    p_t = F.softmax(logits, 1)[torch.arange(16), target]
    expected = (-((1 - p_t) ** 2) * torch.log(p_t)).mean()
    assert make_loss("focal", 2.0)(logits, target).item() == pytest.approx(
        expected.item(), rel=1e-12
    )
    with pytest.raises(CNNCoreError):
        make_loss("hinge")


def test_focal_loss_trains(digits):
    events = _events(_config(loss="focal", epochs=2), digits)
    assert _of(events, "epoch")[-1]["val_accuracy"] > 0.7


# --- metrics -----------------------------------------------------------------------------------


def test_layer_norms_and_histograms_match_direct_computation():
    model = build_classifier("lenet5", (1, 32, 32), 10)
    F.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    grads, weights = metrics.layer_norms(metrics.weighted_layers(model))
    assert grads["features.0"] == pytest.approx(
        model.features[0].weight.grad.norm().item(), rel=1e-6
    )
    assert weights["classifier.2"] == pytest.approx(
        model.classifier[2].weight.norm().item(), rel=1e-6
    )
    hist = metrics.weight_histograms(model, bins=12)[1]
    values = model.features[3].weight.detach().flatten().numpy()
    counts, edges = np.histogram(values, bins=12, range=(values.min(), values.max()))
    assert hist.counts == counts.tolist() and sum(hist.counts) == values.size
    assert hist.edges == pytest.approx(edges.tolist(), abs=1e-7)


def test_activation_statistics_are_exact_and_leave_no_hooks():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(32, 6)
    stats = {s.layer: s for s in metrics.activation_statistics(model, x)}
    hidden = torch.relu(model[0](x))
    assert stats["1"].kind == "ReLU"
    assert stats["1"].mean == pytest.approx(hidden.mean().item(), rel=1e-6)
    assert stats["1"].std == pytest.approx(hidden.std().item(), rel=1e-6)
    assert stats["1"].fraction_zero == pytest.approx((hidden == 0).float().mean().item())
    assert set(stats) == {"0", "1", "2"}
    assert all(not m._forward_hooks for m in model.modules())


def test_first_layer_filters_use_one_symmetric_scale():
    conv = nn.Conv2d(1, 3, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.linspace(-1, 0.5, 27).view(3, 1, 3, 3))
    filters = metrics.first_layer_filters(nn.Sequential(conv))
    assert filters.scale == pytest.approx(1.0) and filters.shape == [3, 1, 3, 3]
    assert filters.pixels[0][0][0] == [0, 0, 0]  # −1 → black
    assert filters.pixels[2][2][2] == [round(127.5 + 127.5 * 0.5)] * 3  # 0.5 → light grey
    atlas = np.asarray(Image.open(io.BytesIO(base64.b64decode(filters.png))))
    assert atlas.shape == (2 * 4 - 1, 2 * 4 - 1, 3)  # 3 tiles in a 2 × 2 grid, 1-pixel gaps
    assert np.array_equal(atlas[4:7, 0:3], np.array(filters.pixels[2], dtype=np.uint8))
    assert metrics.first_layer_filters(nn.Linear(2, 2)) is None


# --- config and checkpoints --------------------------------------------------------------------


def test_config_round_trips_through_json_and_refuses_bad_values():
    config = _config(
        augment=AugmentConfig(rotation=5), data=DataConfig(name="shapes", image_size=32)
    )
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    bad_settings = [
        ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"),
        ({"early_stopping": -2}, "early_stopping"), ({"optimizer": "lion"}, "optimizer"),
        ({"lr": -0.1}, "lr"), ({"lr": float("nan")}, "lr"), ({"momentum": 1.5}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"), ({"schedule": "cyclic"}, "schedule"),
        ({"gamma": 0.0}, "gamma"), ({"loss": "hinge"}, "loss"), ({"init": "orthogonal"}, "init"),
        ({"activation": "swish2"}, "activation"), ({"dropout": 1.0}, "dropout"),
        ({"model": "autoencoder"}, "model"), ({"model": "lenet6"}, "model"),
        ({"data": DataConfig(name="imagenet")}, "data.name"),
        ({"data": DataConfig(val_fraction=1.0)}, "data.val_fraction"),
    ]  # fmt: skip
    for bad, field in bad_settings:
        with pytest.raises(CNNCoreError) as err:
            _config(**bad).check()
        assert err.value.field == field, bad
    _config().check()  # the defaults pass
    with pytest.raises(CNNCoreError, match="unknown training setting"):
        TrainConfig.from_dict({"optimiser": "adam"})
    with pytest.raises(CNNCoreError, match="unknown augmentation"):
        TrainConfig.from_dict({"augment": {"zoom": 2}})


def test_checkpoint_round_trip_rebuilds_the_same_network(digits, tmp_path):
    config = _config(model="lenet5", batch_norm=True, dropout=0.2, activation="relu", epochs=2,
                     max_steps_per_epoch=5, early_stopping=3)  # fmt: skip
    trainer = Trainer(config, data=digits)
    events = list(trainer.run())
    path = save_checkpoint(trainer, tmp_path / "run.safetensors", {"note": "demo"})
    # a safetensors file: 8-byte header length, then a JSON header — no pickle anywhere
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == "cnnviz-checkpoint/1"
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == trainer.config and checkpoint.file == "run.safetensors"
    facts = checkpoint.trained
    assert facts.labels == tuple(digits.class_names) and facts.input_shape == (1, 32, 32)
    assert facts.mean == tuple(trainer.data.mean) and facts.dataset == "digits"
    best = _of(events, "epoch")[trainer.best_epoch - 1]
    assert facts.score == best["val_accuracy"] and trainer.restored_best
    assert checkpoint.progress["note"] == "demo" and checkpoint.progress["step"] == 10
    assert read_checkpoint_info(path)[1] == facts
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(checkpoint.model(x), trainer.model.eval()(x))
    # the feature-map page can look at it like a bundled trained model
    loaded = checkpoint.loaded_model()
    assert loaded.weights.source == "trained" and loaded.weights.labels == facts.labels
    digit = (digits.val_images[0, 0] * 255).round().to(torch.uint8).numpy()
    picture = decode_image(encode_png(digit), max_bytes=10**6, max_pixels=10**6)
    maps = learned_feature_maps(loaded, trace_layers(loaded.model), picture)
    assert maps.input_shape == (1, 32, 32) and len(maps.predictions) == 5
    assert "features.0.1" in [layer.name for layer in maps.layers]  # the inserted batch norm
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CNNCoreError) as err:
        load_checkpoint(tmp_path / "junk.safetensors")
    assert err.value.field == "checkpoint"


def test_slow_mode_paces_steps_and_still_stops_at_once(digits):
    """step_delay_s: each step event comes at least that long after the previous one (a teacher
    can talk over a demo); a stop during the wait ends the run without waiting it out."""
    import time

    config = _config(epochs=1, max_steps_per_epoch=3, step_delay_s=0.3)
    arrivals = []
    for event in Trainer(config, data=digits).run():
        if event["kind"] == "step":
            arrivals.append(time.perf_counter())
    assert len(arrivals) == 3
    assert all(b - a >= 0.3 for a, b in zip(arrivals, arrivals[1:], strict=False))
    began = time.perf_counter()
    trainer = Trainer(_config(step_delay_s=5.0), data=digits, should_stop=lambda: trainer.step >= 1)
    events = list(trainer.run())
    assert events[-1]["reason"] == "stopped" and trainer.step == 1
    assert time.perf_counter() - began < 5.0  # the 5 s pace after step 1 was cut short
    with pytest.raises(CNNCoreError) as refused:
        Trainer(_config(step_delay_s=5.5), data=digits)
    assert refused.value.field == "step_delay_s"
