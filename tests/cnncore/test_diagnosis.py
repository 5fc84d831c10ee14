"""A failed run explained from its own metrics, on real runs of LeNet-5 on MNIST: learning rate 10
diverges (learning rate too high), a sigmoid LeNet-5 stays at chance (vanishing gradients, from
the gradient norms it recorded), ReLUs killed by a huge step are measured dead (fraction of exact
zeros recomputed here with torch), and a healthy run gets no diagnosis at all."""

import json
import math

import pytest
import torch
from torch import nn

from cnncore.data import DataConfig, load_dataset
from cnncore.diagnosis import DivergenceLimits, DivergenceWatch, diagnose, explain
from cnncore.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/cnncore/conftest.py

MNIST = DataConfig(name="mnist5k", fit="pad")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(MNIST)


def run(data, **config):
    trainer = Trainer(TrainConfig(**{"model": "lenet5", "data": MNIST, **config}), data=data)
    events = list(trainer.run())
    for event in events:
        json.dumps(event, allow_nan=False)
    return trainer, events


def of(events, kind):
    return [e for e in events if e["kind"] == kind]


def test_learning_rate_10_diverges_and_is_explained_as_a_rate_too_high(mnist):
    trainer, events = run(mnist, lr=10.0, epochs=3)  # the /train page's LeNet-5 with lr 10
    (diverged,) = of(events, "diverged")
    assert events[-1]["kind"] == "end" and events[-1]["reason"] == "diverged"
    assert diverged["status"] == "diverged" and not of(events, "epoch")
    report = diverged["diagnosis"]
    assert report["signal"] == "loss_rose" and report["status"] == "diverged"
    lr_high = report["findings"][0]
    assert lr_high["cause"] == "lr_too_high" and lr_high["facts"]["lr"] == 10.0
    # the starting loss is a uniform guess's, ln 10; the smoothed loss rose past 4× of it
    facts = lr_high["facts"]
    assert facts["start_loss"] == pytest.approx(math.log(10), abs=0.1)
    assert facts["peak_loss"] > 4 * math.log(10) and facts["factor"] > 4
    assert trainer.diagnosis.findings[0].cause == "lr_too_high"
    assert "learning rate too high" in diverged["message"]


def test_a_sigmoid_lenet_stays_at_chance_and_its_gradients_vanish(mnist):
    # the /train page's sigmoid preset: momentum SGD at 0.01, sigmoid instead of tanh
    trainer, events = run(mnist, activation="sigmoid", optimizer="momentum", lr=0.01, epochs=3)
    (stalled,) = of(events, "diverged")
    assert events[-1]["reason"] == "stalled" and stalled["status"] == "stalled"
    report = stalled["diagnosis"]
    assert report["signal"] == "at_chance" and report["step"] >= 150
    (finding,) = report["findings"]
    assert finding["cause"] == "vanishing_gradients"
    facts = finding["facts"]
    # the norms it names are the last ones the run recorded (sent with the event), and every
    # earlier recording in its step events shows the same vanishing
    recorded = stalled["grad_norms"]
    assert (facts["first_layer"], facts["last_layer"]) == ("features.0", "classifier.2")
    assert facts["first_norm"] == recorded["features.0"]
    assert facts["last_norm"] == recorded["classifier.2"]
    assert facts["ratio"] == pytest.approx(facts["first_norm"] / facts["last_norm"])
    assert facts["ratio"] < 1e-2
    earlier = [e["grad_norms"] for e in of(events, "step") if e["grad_norms"]]
    assert len(earlier) >= 10
    assert all(n["features.0"] / n["classifier.2"] < 1e-2 for n in earlier)
    assert facts["accuracy"] <= 0.1 + 0.05 and facts["chance"] == 0.1
    # a stalled network is still finite: its final checkpoint can be written
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_relus_killed_by_a_huge_step_are_measured_dead(mnist):
    trainer, events = run(mnist, activation="relu", lr=10.0)
    report = of(events, "diverged")[0]["diagnosis"]
    causes = [f["cause"] for f in report["findings"]]
    assert causes[0] == "lr_too_high" and "dead_relus" in causes
    dead = next(f["facts"] for f in report["findings"] if f["cause"] == "dead_relus")
    # recompute the fraction of exact zeros after each ReLU with plain forward hooks
    outputs = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
        for name, module in trainer.model.named_modules()
        if isinstance(module, nn.ReLU)
    ]
    with torch.no_grad():
        trainer.model.eval()(trainer._val_ready[: trainer.config.activation_images])
    for hook in hooks:
        hook.remove()
    zeros = {name: (out == 0).float().mean().item() for name, out in outputs.items()}
    assert dead["relu_layers"] == len(zeros) == 4
    assert dead["fraction"] == pytest.approx(zeros[dead["layer"]], abs=1e-6)
    assert dead["fraction"] == pytest.approx(max(zeros.values()), abs=1e-6)
    assert dead["fraction"] >= 0.9
    assert dead["layers"] == sum(z >= 0.9 for z in zeros.values())


def test_a_healthy_run_gets_no_diagnosis(mnist):
    trainer, events = run(mnist, lr=1e-3, epochs=1, max_steps_per_epoch=40)
    assert not of(events, "diverged") and events[-1]["reason"] == "completed"
    assert trainer.diagnosis is None


# --- the watch and the rules on their own ------------------------------------------------------


def feed(watch, losses, accuracy=0.5):
    signals = [watch.update(loss, accuracy) for loss in losses]
    return next((s for s in signals if s), None), watch


def test_the_watch_flags_non_finite_and_rising_losses():
    assert feed(DivergenceWatch(10), [2.3, 2.2, float("nan")])[0] == "non_finite"
    assert feed(DivergenceWatch(10), [2.3, float("inf")])[0] == "non_finite"
    # the smoothed loss must pass 4 × max(start, ln 10) = 9.21: one spike is averaged away
    assert feed(DivergenceWatch(10), [2.3] * 9 + [60.0])[0] is None
    signal, watch = feed(DivergenceWatch(10), [2.3] * 8 + [60.0, 60.0])
    assert signal == "loss_rose" and watch.peak_loss == pytest.approx((8 * 2.3 + 120) / 10)
    # a fine-tuned run starting at loss 0.01 is not flagged for noise around 0.05
    assert feed(DivergenceWatch(10), [0.01, 0.05, 0.08, 0.04])[0] is None


def test_the_watch_waits_many_steps_before_calling_a_run_stuck():
    limits = DivergenceLimits(chance_after=150, chance_window=50)
    at_chance = DivergenceWatch(10, limits)
    signals = [at_chance.update(2.3, 0.1) for _ in range(150)]
    assert signals[:149] == [None] * 149 and signals[149] == "at_chance"
    learning = DivergenceWatch(10, limits)
    assert not any(learning.update(2.0, 0.16) for _ in range(400))  # above chance + 5 points


def test_findings_follow_the_measurements():
    watch = DivergenceWatch(10)
    for _ in range(200):
        watch.update(2.3, 0.1)
    norms = {"conv": 1e-4, "fc": 0.5}
    report = diagnose(watch, "at_chance", lr=0.01, grad_norms=norms, relu_zero_fractions={})
    assert report.status == "stalled" and [f.cause for f in report.findings] == [
        "vanishing_gradients"
    ]
    healthy_norms = {"conv": 0.1, "fc": 0.5}
    relus = {"relu1": 0.5, "relu2": 0.97}
    report = diagnose(watch, "at_chance", lr=0.01, grad_norms=healthy_norms,
                      relu_zero_fractions=relus)  # fmt: skip
    (dead,) = report.findings
    assert dead.cause == "dead_relus" and dead.facts["layer"] == "relu2"
    nothing = diagnose(watch, "at_chance", lr=1e-6, grad_norms=healthy_norms,
                       relu_zero_fractions={"relu": 0.4})  # fmt: skip
    assert [f.cause for f in nothing.findings] == ["no_progress"]
    assert "stalled at step 200" in explain(nothing)
    # non-finite norms (a NaN step) are left out rather than read as vanishing
    nan = diagnose(watch, "non_finite", lr=5.0, grad_norms={"conv": math.nan, "fc": 1.0},
                   relu_zero_fractions={})  # fmt: skip
    assert [f.cause for f in nan.findings] == ["lr_too_high"] and nan.status == "diverged"
    with pytest.raises(ValueError):
        diagnose(watch, "bored", lr=1.0, grad_norms={}, relu_zero_fractions={})
