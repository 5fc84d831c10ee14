"""The training engine: one run of one model on one dataset, as a stream of metric events.

    trainer = Trainer(TrainConfig(model="lenet5", data=DataConfig(name="mnist5k")))
    for event in trainer.run():          # plain-JSON dicts: "start", "step", "epoch", …
        publish(event)                   # between two events the model is consistent, so
    save_checkpoint(trainer, "run.safetensors")   # (cnncore.checkpoint) may run at any yield

Built to be driven from a worker process: the config is a dataclass that round-trips through
JSON (`to_dict` / `from_dict`); `should_stop` and `should_pause` are polled before every step
(and `should_stop` after each epoch's last one);
every event is a dict of plain floats, ints, strings and lists (non-finite numbers become
None, so strict JSON never sees NaN).

The loop is the textbook one (Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.1.3,
minibatch SGD): shuffle, forward, loss, backward, step, then evaluate on held-out data each
epoch. Early stopping follows Prechelt (1998), "Early stopping — but when?": stop after
`early_stopping` epochs without a lower validation loss and keep the best weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnncore.data import DATASET_NAMES, DataConfig, DataSplit, load_dataset, resize_split
from cnncore.datasets.augment import AugmentConfig, augment_batch
from cnncore.device import resolve_device
from cnncore.diagnosis import Diagnosis, DivergenceLimits, DivergenceWatch, diagnose, explain
from cnncore.errors import CNNCoreError
from cnncore.metrics import (
    activation_statistics,
    confusion_matrix,
    first_layer_filters,
    layer_norms,
    misclassified_examples,
    weight_histograms,
    weighted_layers,
)
from cnncore.model_options import (
    add_dropout,
    build_classifier,
    check_width,
    fit_input_size,
    initialise_weights,
    replace_activations,
)
from cnncore.models import get_model_info
from cnncore.optim import build_optimizer, build_schedule, make_loss

__all__ = ["TrainConfig", "Trainer", "plain_json"]

_EVAL_BATCH = 512
MAX_STEP_DELAY_S = 5.0  # slow mode's longest pace: a demo, not a way to hold a worker for hours


@dataclass
class TrainConfig:
    """Everything that defines a run. `asdict` gives plain JSON; `from_dict` reads it back."""

    model: str = "lenet5"
    data: DataConfig = field(default_factory=DataConfig)
    # model switches (cnncore.model_options)
    activation: str | None = None  # None keeps the zoo's own (tanh in LeNet-5, ReLU elsewhere)
    batch_norm: bool = False
    dropout: float = 0.0
    width: int | None = None  # channels of every conv (TinyVGG's); None keeps the zoo's
    init: str = "default"  # default | xavier | he | normal | zeros
    init_std: float = 0.01  # σ of the "normal" init
    # optimisation (cnncore.optim)
    optimizer: str = "adam"  # sgd | momentum | nesterov | rmsprop | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | step | cosine
    step_size: int = 1  # epochs between two decays of the step schedule
    gamma: float = 0.1  # decay factor of the step schedule
    loss: str = "cross_entropy"  # cross_entropy | focal
    focal_gamma: float = 2.0
    epochs: int = 3
    batch_size: int = 64
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    early_stopping: int = 0  # patience in epochs; 0 switches it off
    seed: int = 0
    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    # what is measured, and how often
    max_steps_per_epoch: int | None = None  # cut epochs short (tiny demo and test runs)
    step_delay_s: float = 0.0  # slow mode: each step takes at least this long (a teacher talks)
    log_every: int = 1  # steps between two "step" events
    norms_every: int = 10  # steps between per-layer gradient/weight norms in "step" events
    histogram_bins: int = 30
    max_misclassified: int = 8
    activation_images: int = 64  # validation images sent through for activation statistics

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise CNNCoreError(f"unknown training setting {sorted(unknown)[0]!r}", "config")
        if isinstance(values.get("data"), dict):
            values["data"] = DataConfig.from_dict(values["data"])
        if isinstance(values.get("augment"), dict):
            augment = values["augment"]
            unknown = set(augment) - {f.name for f in fields(AugmentConfig)}
            if unknown:
                raise CNNCoreError(f"unknown augmentation {sorted(unknown)[0]!r}", "augment")
            values["augment"] = AugmentConfig(**augment)
        return cls(**values)

    def check(self) -> None:
        """Refuse impossible numbers early, naming the field (the API turns this into 422)."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                    "log_every": self.log_every, "norms_every": self.norms_every,
                    "histogram_bins": self.histogram_bins}  # fmt: skip
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CNNCoreError(f"{name} must be a whole number of at least 1", name)
        if not 0.0 <= self.step_delay_s <= MAX_STEP_DELAY_S:
            raise CNNCoreError(
                f"step_delay_s must be between 0 and {MAX_STEP_DELAY_S:g} seconds", "step_delay_s"
            )
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise CNNCoreError("max_steps_per_epoch must be at least 1", "max_steps_per_epoch")
        if self.early_stopping < 0:
            raise CNNCoreError("early_stopping patience cannot be negative", "early_stopping")
        if self.max_misclassified < 0 or self.activation_images < 1:
            raise CNNCoreError("metric sizes must be positive", "max_misclassified")
        if get_model_info(self.model).num_classes is None:
            raise CNNCoreError(f"{self.model} is not a classifier; pick another model", "model")
        if self.data.name not in DATASET_NAMES:
            raise CNNCoreError(
                f"unknown dataset; choose from {', '.join(DATASET_NAMES)}", "data.name"
            )
        if not 0.0 < self.data.val_fraction < 1.0:
            raise CNNCoreError("val_fraction must be between 0 and 1", "data.val_fraction")
        # The builders own their rules; running them on a one-number stand-in checks names and
        # ranges in microseconds, before any data is loaded.
        stand_in = nn.Linear(1, 1)
        if self.activation is not None:
            replace_activations(nn.Sequential(nn.ReLU()), self.activation)
        add_dropout(nn.Sequential(), self.dropout)
        check_width(self.model, self.width)
        initialise_weights(stand_in, self.init, self.init_std)
        optimizer = build_optimizer(
            self.optimizer, stand_in.parameters(), self.lr,
            momentum=self.momentum, weight_decay=self.weight_decay,
        )  # fmt: skip
        build_schedule(
            self.schedule, optimizer, 1, self.epochs, step_size=self.step_size, gamma=self.gamma
        )
        make_loss(self.loss, self.focal_gamma)


def plain_json(value: Any) -> Any:
    """JSON-safe copy: non-finite floats → None (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


def _event(kind: str, **data: Any) -> dict[str, Any]:
    return plain_json({"kind": kind, **data})


@dataclass
class _Clock:
    """Training time only (evaluation and pauses excluded), for throughput and ETA."""

    start: float = field(default_factory=time.perf_counter)
    train_s: float = 0.0
    eval_s: float = 0.0
    paused_s: float = 0.0
    paced_s: float = 0.0  # slow mode's waits between steps
    images: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused_s


@dataclass
class _Window:
    """Sums since the last "step" event (several steps when log_every > 1)."""

    loss: float = 0.0
    correct: torch.Tensor | None = None  # stays on the device: no sync until the event
    images: int = 0
    seconds: float = 0.0

    def add(self, loss: float, correct: torch.Tensor, images: int, seconds: float = 0.0) -> None:
        self.loss += loss * images
        self.correct = correct if self.correct is None else self.correct + correct
        self.images += images
        self.seconds += seconds

    def accuracy(self) -> float:
        return self.correct.item() / self.images if self.images else 0.0


@dataclass
class _EpochSummary(_Window):
    """Running training loss and accuracy over one epoch, how it ended, the last norms."""

    epoch: int = 0  # 0-based
    stop_reason: str | None = None  # "stopped", "diverged" or "stalled": the epoch was cut short
    norms: tuple[dict[str, float], dict[str, float]] = ({}, {})


class Trainer:
    """One training run. Iterate `run()` for its events; see the module docstring."""

    def __init__(
        self,
        config: TrainConfig,
        data: DataSplit | None = None,
        model: nn.Module | None = None,
        should_stop: Callable[[], bool] | None = None,
        should_pause: Callable[[], bool] | None = None,
        pause_poll_s: float = 0.1,
        divergence: DivergenceLimits | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.device = resolve_device(config.device)
        self.data = data if data is not None else load_dataset(config.data)
        if model is None:
            self.data = self._sized_for_model(self.data)
        self.should_stop = should_stop or (lambda: False)
        self.should_pause = should_pause or (lambda: False)
        self.pause_poll_s = pause_poll_s
        # The seed fixes, in this order: the initial weights, the dropout masks (both from the
        # global generator), the batch order and the augmentation (their own generators).
        torch.manual_seed(config.seed)
        self.model = (model or self._build_model()).to(self.device)
        self.shuffle_rng = torch.Generator().manual_seed(config.seed + 1)
        self.augment_rng = torch.Generator().manual_seed(config.seed + 2)
        self.loss_fn = make_loss(config.loss, config.focal_gamma)
        self.optimizer = build_optimizer(
            config.optimizer, self.model.parameters(), config.lr,
            momentum=config.momentum, weight_decay=config.weight_decay,
        )  # fmt: skip
        n_train = len(self.data.train_labels)
        self.steps_per_epoch = math.ceil(n_train / config.batch_size)
        if config.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        self.scheduler = build_schedule(
            config.schedule, self.optimizer, self.steps_per_epoch, config.epochs,
            step_size=config.step_size, gamma=config.gamma,
        )  # fmt: skip
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.epochs_completed = 0
        self.val_accuracies: list[float] = []  # one per completed epoch
        self.step = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self.restored_best = False  # the model holds the best epoch's weights, not the last
        self.watch = DivergenceWatch(self.data.num_classes, divergence)
        self.diagnosis: Diagnosis | None = None  # why the run failed, when it did

    # --- setup -----------------------------------------------------------------------------

    def _sized_for_model(self, data: DataSplit) -> DataSplit:
        """Grow images the model cannot take (8×8 digits into LeNet-5 → 32×32)."""
        channels, height, width = data.input_shape
        side = fit_input_size(self.config.model, channels, max(height, width))
        if (height, width) == (side, side):
            return data
        return resize_split(data, side, self.config.data.fit)

    def _build_model(self) -> nn.Module:
        c = self.config
        return build_classifier(
            c.model, self.data.input_shape, self.data.num_classes, activation=c.activation,
            batch_norm=c.batch_norm, dropout=c.dropout, init=c.init, init_std=c.init_std,
            width=c.width,
        )  # fmt: skip

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.data.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.data.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> Iterator[dict[str, Any]]:
        """Train for `config.epochs` epochs, yielding events; ends with one "end" event."""
        c = self.config
        clock = _Clock()
        self._prepare_tensors()
        total_steps = self.steps_per_epoch * c.epochs
        yield self._start_event(total_steps)
        reason = "completed"
        for epoch in range(c.epochs):
            summary = yield from self._train_epoch(epoch, clock, total_steps)
            if summary.stop_reason:
                reason = summary.stop_reason
                break
            tick = time.perf_counter()
            val = self._evaluate(self._val_ready, self._val_labels)
            self.epochs_completed = epoch + 1
            self.val_accuracies.append(val["accuracy"])
            if val["loss"] < self.best_val_loss:
                self.best_val_loss, self.best_epoch = val["loss"], epoch + 1
                if c.early_stopping:
                    state = self.model.state_dict()
                    self._best_state = {k: v.detach().clone() for k, v in state.items()}
            event = self._epoch_event(summary, val, clock, total_steps)
            clock.eval_s += time.perf_counter() - tick
            yield event
            patience_spent = self.best_epoch is not None and (
                epoch + 1 - self.best_epoch >= c.early_stopping
            )
            if c.early_stopping and patience_spent and epoch + 1 < c.epochs:
                reason = "early_stop"
                yield _event(
                    "early_stop", epoch=epoch + 1, best_epoch=self.best_epoch,
                    best_val_loss=self.best_val_loss, patience=c.early_stopping,
                )  # fmt: skip
                break
        restored = self._best_state is not None and reason in ("completed", "early_stop")
        self.restored_best = restored
        if restored:
            # With early stopping on, the run ends holding its best weights (Prechelt 1998).
            self.model.load_state_dict(self._best_state)
        yield _event(
            "end", reason=reason, step=self.step, epochs_completed=self.epochs_completed,
            best_epoch=self.best_epoch, best_val_loss=self.best_val_loss,
            restored_best=restored, elapsed_s=clock.elapsed(),
        )  # fmt: skip

    def _prepare_tensors(self) -> None:
        device, data = self.device, self.data
        self._train_raw = data.train_images.to(device)
        self._train_labels = data.train_labels.to(device)
        self._val_raw = data.val_images.to(device)
        self._val_labels = data.val_labels.to(device)
        # Without augmentation the normalised training set is computed once; with it, each
        # batch is changed in pixel space first (black borders stay black), then normalised.
        augmenting = self.config.augment.enabled
        self._train_ready = None if augmenting else self._normalise(self._train_raw)
        self._val_ready = self._normalise(self._val_raw)
        self._layers = weighted_layers(self.model)
        self._recorded_grads: dict[str, float] = {}  # the latest finite gradient norms

    def _batch(self, index: torch.Tensor) -> torch.Tensor:
        if self._train_ready is not None:
            return self._train_ready[index]
        changed = augment_batch(self._train_raw[index], self.config.augment, self.augment_rng)
        return self._normalise(changed)

    def _train_epoch(
        self, epoch: int, clock: _Clock, total_steps: int
    ) -> Generator[dict[str, Any], None, _EpochSummary]:
        """One pass over the shuffled training set; returns its running loss and accuracy."""
        c = self.config
        self.model.train()
        labels = self._train_labels
        order = torch.randperm(len(labels), generator=self.shuffle_rng).to(self.device)
        summary, window = _EpochSummary(epoch=epoch), _Window()
        fresh_norms = False  # norms sampled since the last step event
        for batch in range(self.steps_per_epoch):
            if self.should_pause():
                yield from self._wait_while_paused(clock)
            if self.should_stop():
                summary.stop_reason = "stopped"
                return summary
            tick = time.perf_counter()
            index = order[batch * c.batch_size : (batch + 1) * c.batch_size]
            target = labels[index]
            logits = self.model(self._batch(index))
            loss = self.loss_fn(logits, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Also the first step and each epoch's last: a run shorter than norms_every still
            # shows its gradients, and every epoch event carries the norms of its end.
            last = batch == self.steps_per_epoch - 1
            if (self.step + 1) % c.norms_every == 0 or self.step == 0 or last:
                summary.norms, fresh_norms = layer_norms(self._layers), True
                if all(map(math.isfinite, summary.norms[0].values())):
                    self._recorded_grads = summary.norms[0]
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            loss_value = loss.item()
            n, correct = len(target), (logits.detach().argmax(1) == target).sum()
            signal = self.watch.update(loss_value, correct.item() / n)
            if signal is not None:
                summary.stop_reason = yield from self._failed(signal, epoch, lr, loss_value)
                return summary
            self.step += 1
            spent = time.perf_counter() - tick
            self._pace(tick + c.step_delay_s, clock)
            clock.train_s, clock.images = clock.train_s + spent, clock.images + n
            summary.add(loss_value, correct, n)
            window.add(loss_value, correct, n, spent)
            if self.step % c.log_every == 0 or last:
                norms = summary.norms if fresh_norms else None
                yield self._step_event(epoch, batch, lr, window, clock, total_steps, norms)
                window, fresh_norms = _Window(), False
        # Once more after the epoch's last step: a stop asked while it ran ends the run as
        # stopped (no evaluation, no "completed"), as one asked during any other step does.
        if self.should_stop():
            summary.stop_reason = "stopped"
        return summary

    def _failed(
        self, signal: str, epoch: int, lr: float, loss: float
    ) -> Generator[dict[str, Any], None, str]:
        """Diagnose a failed run from its own metrics, announce it, return its end reason."""
        self.model.eval()
        stats = activation_statistics(self.model, self._val_ready[: self.config.activation_images])
        zeros = {s.layer: s.fraction_zero for s in stats if s.kind in ("ReLU", "ReLU6")}
        self.diagnosis = diagnose(
            self.watch, signal, lr=lr, grad_norms=self._recorded_grads, relu_zero_fractions=zeros
        )
        yield _event(
            "diverged", step=self.step + 1, epoch=epoch + 1, lr=lr, loss=str(loss),
            status=self.diagnosis.status, diagnosis=self.diagnosis.to_dict(),
            grad_norms=self._recorded_grads or None,
            message=explain(self.diagnosis),
        )  # fmt: skip
        return self.diagnosis.status

    def _pace(self, until: float, clock: _Clock) -> None:
        """Slow mode: wait until `until` (perf_counter), in short naps so that stop and pause
        are still read at once; the wait counts as neither training time nor pause."""
        began = time.perf_counter()
        while (left := until - time.perf_counter()) > 0 and not self.should_stop():
            if self.should_pause():
                break  # the pause itself waits, before the next step
            time.sleep(min(left, self.pause_poll_s))
        clock.paced_s += time.perf_counter() - began

    def _wait_while_paused(self, clock: _Clock) -> Iterator[dict[str, Any]]:
        began = time.perf_counter()
        yield _event("paused", step=self.step)
        while self.should_pause() and not self.should_stop():
            time.sleep(self.pause_poll_s)
        clock.paused_s += time.perf_counter() - began
        yield _event("resumed", step=self.step)

    @torch.no_grad()
    def _evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Validation loss, accuracy and softmax probabilities, in eval mode (no dropout,
        batch norm with its running statistics)."""
        self.model.eval()
        loss_sum, probs = 0.0, []
        for start in range(0, len(labels), _EVAL_BATCH):
            logits = self.model(images[start : start + _EVAL_BATCH])
            target = labels[start : start + _EVAL_BATCH]
            loss_sum += self.loss_fn(logits, target).item() * len(target)
            probs.append(F.softmax(logits.float(), dim=1))
        probs_all = torch.cat(probs)
        predicted = probs_all.argmax(1)
        return {
            "loss": loss_sum / len(labels),
            "accuracy": (predicted == labels).float().mean().item(),
            "probs": probs_all,
            "predicted": predicted,
        }

    # --- events ----------------------------------------------------------------------------

    def _start_event(self, total_steps: int) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return _event(
            "start", config=self.config.to_dict(), dataset=self.data.describe(),
            model={"name": self.config.model, "params": params, "trainable_params": trainable,
                   "layers": [name for name, _ in weighted_layers(self.model)]},
            device=str(self.device), steps_per_epoch=self.steps_per_epoch, total_steps=total_steps,
        )  # fmt: skip

    def _eta(self, clock: _Clock, total_steps: int) -> float:
        done = max(self.step, 1)
        per_step = max(clock.train_s / done, self.config.step_delay_s)  # slow mode paces steps
        per_eval = clock.eval_s / max(self.epochs_completed, 1) if self.epochs_completed else 0.0
        return per_step * (total_steps - self.step) + per_eval * (
            self.config.epochs - self.epochs_completed
        )

    def _step_event(
        self, epoch: int, batch: int, lr: float, window: _Window, clock: _Clock,
        total_steps: int, norms: tuple[dict, dict] | None,
    ) -> dict[str, Any]:  # fmt: skip
        return _event(
            "step", step=self.step, epoch=epoch + 1, batch=batch + 1,
            loss=window.loss / max(window.images, 1), accuracy=window.accuracy(), lr=lr,
            images_per_second=window.images / window.seconds if window.seconds else None,
            elapsed_s=clock.elapsed(), eta_s=self._eta(clock, total_steps),
            grad_norms=norms[0] if norms else None, weight_norms=norms[1] if norms else None,
        )  # fmt: skip

    def _epoch_event(
        self, summary: _EpochSummary, val: dict[str, Any], clock: _Clock, total_steps: int
    ) -> dict[str, Any]:
        c, labels = self.config, self._val_labels
        self.model.eval()
        filters = first_layer_filters(self.model)
        activations = activation_statistics(self.model, self._val_ready[: c.activation_images])
        wrong = misclassified_examples(self._val_raw, labels, val["probs"], c.max_misclassified)
        return _event(
            "epoch", epoch=summary.epoch + 1, step=self.step,
            train_loss=summary.loss / max(summary.images, 1),
            train_accuracy=summary.accuracy(),
            val_loss=val["loss"], val_accuracy=val["accuracy"],
            lr=self.optimizer.param_groups[0]["lr"],
            images_per_second=clock.images / clock.train_s if clock.train_s else None,
            elapsed_s=clock.elapsed(), eta_s=self._eta(clock, total_steps),
            best_epoch=self.best_epoch, best_val_loss=self.best_val_loss,
            grad_norms=summary.norms[0], weight_norms=summary.norms[1],
            activations=[asdict(s) for s in activations],
            histograms=[asdict(h) for h in weight_histograms(self.model, c.histogram_bins)],
            filters=asdict(filters) if filters else None,
            confusion=confusion_matrix(val["predicted"], labels, self.data.num_classes),
            misclassified=[asdict(m) for m in wrong],
        )  # fmt: skip
