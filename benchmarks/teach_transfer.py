"""The teach flow's target, measured on the product path: 3 classes × 30 webcam-like pictures,
held-out accuracy and training time of a run that transfers from a trained backbone, next to
the same run trained from scratch (the baseline, in the same process).

Data: `cnncore.datasets.desk_objects` (mug, book, ball over random cluttered backgrounds; see
docs/PERFORMANCE.md), 30 per class drawn at 96×96 like a webcam frame, each prepared exactly as
/teach stores a picture (`prepare_picture`: decoded, shrunk to the kept side, PNG) and written
as a dataset version (a manifest and its pictures). The run is what `POST /api/runs` plans and a
worker runs: `plan_run` (the transfer source checked, the pictures read at its input size)
then `build_trainer` (`app.runs.worker`) and the trainer's own events; 6 pictures per class are
held out (`val_fraction` 0.2, stratified by the seed) and never trained on.
- transfer: `init_from` a bundled source (`--source`: by default `tinyvgg_colour`, TinyVGG
  32 channels wide with batch norm pretrained on generated colour things; `tinyvgg`, the one
  trained on grey shapes; see weights/README.md), a new 3-class head, every layer training,
  normalised with the source's statistics;
- scratch: the zoo's TinyVGG (10 channels) freshly initialised (seeded) at the source's input
  size, everything else equal.
Both with the recipe of /teach's "Train" link (`TRAIN_RECIPE` in static/js/datasets/teach.js:
`--epochs`, `--lr`, `--shift`; Adam, cosine schedule, batch 16, random horizontal flips and
shifts), one torch thread. Time: the trainer's own `elapsed_s` (data loading and
model building excluded, as a student sees the progress bar). Target (issue 15): transfer
≥ 90 % held-out (mean over the seeds) within 60 s; the script exits 1 when it is missed.

    .venv/bin/python benchmarks/teach_transfer.py [--seeds 0 1 2 3 4] [--epochs 30]
        [--schedule cosine] [--side 96] [--source tinyvgg_colour]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from app.runs.spec import RunSpec, plan_run
from app.runs.worker import build_trainer
from app.schemas.runs import RunCreate
from app.settings import Settings
from cnncore.datasets.desk_objects import DESK_CLASSES, generate_desk_objects
from cnncore.datasets.user_images import PictureLimits, prepare_picture
from cnncore.transfer_sources import weights_source

PER_CLASS = 30


def dataset_version(folder: Path, seed: int, side: int) -> Path:
    """The pictures as /teach keeps them, and a version's manifest over them."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (kind, pixels) in enumerate(generate_desk_objects(PER_CLASS, side, seed=1000 + seed)):
        raw = io.BytesIO()
        Image.fromarray(pixels).save(raw, "PNG")
        picture = prepare_picture(raw.getvalue(), f"{kind}{i}.png", PictureLimits())
        (folder / f"{picture.digest}.png").write_bytes(picture.png)
        images.append([picture.digest, DESK_CLASSES.index(kind)])
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"classes": list(DESK_CLASSES), "images": images}))
    return manifest


def run(manifest: Path, seed: int, transfer: bool, args, work: Path) -> tuple[float, float]:
    """(held-out accuracy after the last epoch, the trainer's seconds)."""
    body = {
        "model": "tinyvgg", "data": {"name": "user", "dataset": "0" * 16, "seed": seed,
                                     "val_fraction": 0.2},
        "optimizer": "adam", "lr": args.lr, "schedule": args.schedule, "epochs": args.epochs,
        "batch_size": 16, "augment": {"flip": True, "shift": args.shift}, "seed": seed,
        "log_every": 1000,
    }  # fmt: skip
    if transfer:
        body["init_from"] = {"weights": "bundled", "model": args.source}
    else:  # what the transfer run reads (the source's size)
        body["data"]["image_size"] = args.source_side
    settings = Settings(data_dir=work, max_run_epochs=200)
    config = plan_run(RunCreate(**body), settings, lambda _id: None, lambda _id, _v: (manifest, 1))
    spec = RunSpec.of("bench", config, work / "checkpoints", None, 1)
    accuracy, seconds = float("nan"), float("nan")
    for event in build_trainer(spec, lambda: False, lambda: False).run():
        if event["kind"] == "epoch":
            accuracy = event["val_accuracy"]
        if event["kind"] == "end":
            seconds = event["elapsed_s"]
    return accuracy, seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--shift", type=int, default=2)
    parser.add_argument("--schedule", default="cosine", choices=["constant", "step", "cosine"])
    parser.add_argument("--side", type=int, default=96, help="pictures drawn at side×side")
    parser.add_argument("--source", default="tinyvgg_colour", help="a bundled transfer source")
    args = parser.parse_args()
    source = weights_source("bundled", args.source, imagenet_dir=None)
    args.source_side = source.trained.input_shape[-1]
    torch.set_num_threads(1)
    print(f"load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.epochs} epochs, lr {args.lr} ({args.schedule}), shift {args.shift}, "
          f"pictures drawn at {args.side}×{args.side}, source {args.source} "
          f"({source.trained.dataset}, read at {args.source_side}×{args.source_side})")  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {"scratch": [], "transfer": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            manifest = dataset_version(Path(folder) / f"v{seed}", seed, args.side)
            for kind in ("scratch", "transfer"):
                accuracy, seconds = run(manifest, seed, kind == "transfer", args, Path(folder))
                results[kind].append((accuracy, seconds))
                load = os.getloadavg()[0]
                print(f"seed {seed} {kind:8s} held-out {accuracy:6.1%} (18 pictures)  "
                      f"train {seconds:5.1f} s  load {load:.1f}", flush=True)  # fmt: skip
    means = {k: statistics.mean(a for a, _ in v) for k, v in results.items()}
    slowest = max(s for _, s in results["transfer"])
    print(f"mean held-out: scratch {means['scratch']:.1%}, transfer {means['transfer']:.1%} "
          f"(transfer − scratch {100 * (means['transfer'] - means['scratch']):+.1f} points); "
          f"slowest transfer run {slowest:.1f} s")  # fmt: skip
    met = means["transfer"] >= 0.9 and slowest <= 60
    print("target (≥ 90 % held-out within 60 s):", "met" if met else "MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
