"""Why a training run failed, read from its own metrics.

Two pieces, both pure (numbers in, dataclasses out):

- `DivergenceWatch` follows the training loss and accuracy step by step and says when a run has
  failed: the loss is NaN or infinite (`non_finite`), the loss averaged over the last `window`
  steps is more than `loss_factor` times the loss the run started from, or than the loss of a
  uniform guess ln(classes) if that is larger (`loss_rose`), or after
  `chance_after` steps the accuracy averaged over the last `chance_window` steps is still within
  `chance_margin` of guessing, 1/classes (`at_chance`).
- `diagnose` names the likely causes from what the run recorded (Goodfellow, Bengio & Courville
  2016, "Deep Learning", §8.2 and §11.4 on debugging strategies):
  * `lr_too_high` — the loss blew up or rose far above its start: each step overshoots
    (LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp", §4.5: past twice the optimal rate
    gradient descent diverges);
  * `dead_relus` — a ReLU layer outputs exactly 0 for at least `dead_fraction` of its units over
    the measured images: no gradient flows back through those units, so they never recover
    (Maas, Hannun & Ng 2013, "Rectifier nonlinearities improve neural network acoustic models");
  * `vanishing_gradients` — the first weighted layer's gradient norm is below `vanishing_ratio`
    times the last one's (Glorot & Bengio 2010; Hochreiter 1991): the early layers hardly learn;
  * `no_progress` — at chance with none of the above: the steps are too small or the data gives
    the network nothing to hold on to.
A run that the watch never flags gets no diagnosis at all.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Diagnosis", "DivergenceLimits", "DivergenceWatch", "Finding", "diagnose", "explain"]

SIGNALS = ("non_finite", "loss_rose", "at_chance")
CAUSES = ("lr_too_high", "dead_relus", "vanishing_gradients", "no_progress")


@dataclass(frozen=True)
class DivergenceLimits:
    """When a run counts as failed, and when a measurement points to a cause."""

    loss_factor: float = 4.0  # smoothed loss above this multiple of the starting loss
    window: int = 10  # steps averaged for the smoothed loss
    chance_after: int = 150  # steps before a run may be called stuck at chance
    chance_window: int = 50  # steps averaged for the accuracy
    chance_margin: float = 0.05  # accuracy within 1/classes + this counts as guessing
    dead_fraction: float = 0.9  # a ReLU layer this often exactly 0 is dead
    vanishing_ratio: float = 1e-2  # first ÷ last gradient norm below this vanishes


class DivergenceWatch:
    """Fed each training step's loss and accuracy; `update` returns a signal once the run fails."""

    def __init__(self, num_classes: int, limits: DivergenceLimits | None = None) -> None:
        self.limits = limits or DivergenceLimits()
        self.chance = 1.0 / num_classes
        self.guess_loss = math.log(num_classes)  # cross-entropy of a uniform guess
        self.steps = 0
        self.start_loss: float | None = None  # mean loss of the first `window` steps
        self.peak_loss = -math.inf  # highest smoothed loss so far
        self._first: list[float] = []
        self._losses: deque[float] = deque(maxlen=self.limits.window)
        self._accuracies: deque[float] = deque(maxlen=self.limits.chance_window)

    @property
    def smoothed_loss(self) -> float:
        return sum(self._losses) / len(self._losses) if self._losses else math.nan

    @property
    def recent_accuracy(self) -> float:
        return sum(self._accuracies) / len(self._accuracies) if self._accuracies else math.nan

    def update(self, loss: float, accuracy: float) -> str | None:
        limits = self.limits
        self.steps += 1
        if not math.isfinite(loss):
            return "non_finite"
        if self.start_loss is None:
            # the very first loss is the starting point; a loss that doubles after one step is
            # already what a far too large rate does (lr 10: 2.3 → 109 at step 2)
            self.start_loss = loss
        self._losses.append(loss)
        self._accuracies.append(accuracy)
        self.peak_loss = max(self.peak_loss, self.smoothed_loss)
        if self.smoothed_loss > limits.loss_factor * max(self.start_loss, self.guess_loss):
            return "loss_rose"
        if (
            self.steps >= limits.chance_after
            and len(self._accuracies) == limits.chance_window
            and self.recent_accuracy <= self.chance + limits.chance_margin
        ):
            return "at_chance"
        return None


@dataclass(frozen=True)
class Finding:
    """One likely cause and the measurements behind it (names used by the explanations)."""

    cause: str  # one of CAUSES
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Diagnosis:
    signal: str  # one of SIGNALS
    step: int
    findings: tuple[Finding, ...]  # most likely first; never empty

    @property
    def status(self) -> str:
        """`diverged` when the loss blew up or rose, `stalled` when stuck at chance."""
        return "stalled" if self.signal == "at_chance" else "diverged"

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "step": self.step, "status": self.status,
                "findings": [asdict(f) for f in self.findings]}  # fmt: skip


def _finite(values: Mapping[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}


def diagnose(
    watch: DivergenceWatch,
    signal: str,
    *,
    lr: float,
    grad_norms: Mapping[str, float | None],
    relu_zero_fractions: Mapping[str, float],
) -> Diagnosis:
    """The causes behind `signal`, from the watch's losses and accuracies, the latest recorded
    per-layer gradient norms (in model order, first to last weighted layer) and the fraction of
    exactly-zero outputs of each ReLU layer on held-out images."""
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}")
    limits, findings = watch.limits, []
    if signal in ("non_finite", "loss_rose"):
        findings.append(Finding("lr_too_high", {
            "lr": lr, "start_loss": watch.start_loss, "peak_loss": watch.peak_loss,
            "factor": watch.peak_loss / watch.start_loss if watch.start_loss else None,
        }))  # fmt: skip
    dead = {k: v for k, v in relu_zero_fractions.items() if v >= limits.dead_fraction}
    if dead:
        worst = max(dead, key=dead.__getitem__)
        findings.append(Finding("dead_relus", {
            "layer": worst, "fraction": dead[worst], "layers": len(dead),
            "relu_layers": len(relu_zero_fractions),
        }))  # fmt: skip
    norms = _finite(grad_norms)
    if len(norms) >= 2:
        first, last = next(iter(norms)), next(reversed(norms))
        if norms[last] > 0 and norms[first] / norms[last] < limits.vanishing_ratio:
            findings.append(Finding("vanishing_gradients", {
                "first_layer": first, "last_layer": last, "first_norm": norms[first],
                "last_norm": norms[last], "ratio": norms[first] / norms[last],
            }))  # fmt: skip
    if not findings:
        findings.append(Finding("no_progress", {"lr": lr}))
    facts = {"accuracy": watch.recent_accuracy, "chance": watch.chance, "steps": watch.steps}
    first = findings[0]
    findings[0] = Finding(first.cause, {**first.facts, **facts})
    return Diagnosis(signal, watch.steps, tuple(findings))


_CAUSE_WORDS = {
    "lr_too_high": "learning rate too high",
    "dead_relus": "dead ReLUs",
    "vanishing_gradients": "vanishing gradients",
    "no_progress": "no progress (steps too small?)",
}


def explain(diagnosis: Diagnosis) -> str:
    """A one-line English summary (logs and the terminal); pages explain with their catalogues."""
    what = {
        "non_finite": "the loss became NaN or infinite",
        "loss_rose": "the loss rose far above where it started",
        "at_chance": "the accuracy stayed at chance",
    }[diagnosis.signal]
    causes = ", ".join(_CAUSE_WORDS[f.cause] for f in diagnosis.findings)
    return f"{diagnosis.status} at step {diagnosis.step}: {what}; likely cause: {causes}"
