"""The teach flow's target, measured in the core: 3 classes × 30 webcam-like pictures, held-out
accuracy and time of transfer from a trained backbone next to training from scratch, and the
time of one live prediction.

Data: `cnncore.datasets.desk_objects` (mug, book, ball over random cluttered backgrounds; see
docs/PERFORMANCE.md), 30 per class at 64×64, 6 per class held out (stratified by the seed).
Both networks are TinyVGG (3×64×64) trained the same way — Adam lr 3e-3, batch 16, random
horizontal flips and shifts of up to 4 pixels, one torch thread — for `--epochs` epochs:
- scratch: freshly initialised (seeded);
- transfer: the bundled TinyVGG weights (trained on generated shapes, weights/README.md) with a
  new 3-class head, every layer training.
Live prediction: one picture through the trained network (normalise, forward, softmax), the
median of 200. Target (issue 15): transfer ≥ 90 % held-out within 60 s; prediction ≤ 100 ms.
This is not yet the product path (a run through /api/runs cannot start from bundled weights).

    .venv/bin/python benchmarks/teach_transfer.py [--seeds 0 1 2] [--epochs 25]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from cnncore.datasets.desk_objects import DESK_CLASSES, generate_desk_objects
from cnncore.model_options import build_classifier
from cnncore.seeding import seeded
from cnncore.weights import load_model


def data(seed: int):
    pictures = generate_desk_objects(30, side=64, seed=1000 + seed)
    images = torch.from_numpy(np.stack([p for _, p in pictures])).permute(0, 3, 1, 2).float() / 255
    labels = torch.tensor([DESK_CLASSES.index(k) for k, _ in pictures])
    generator = torch.Generator().manual_seed(seed)
    held = [torch.randperm(30, generator=generator)[:6] for _ in range(3)]
    val = torch.cat([torch.nonzero(labels == c).flatten()[held[c]] for c in range(3)])
    train = torch.tensor([i for i in range(len(labels)) if i not in set(val.tolist())])
    return images, labels, train, val


def fit(net, images, labels, train, seed: int, epochs: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), 3e-3)
    start = time.perf_counter()
    net.train()
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for first in range(0, len(order), 16):
            batch = order[first : first + 16]
            x = images[batch]
            if torch.rand(1, generator=generator) < 0.5:
                x = x.flip(3)
            dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=generator))
            x = torch.roll(x, (dy, dx), (2, 3))
            optimiser.zero_grad()
            F.cross_entropy(net(x), labels[batch]).backward()
            optimiser.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backbone = load_model("tinyvgg")
    mean = torch.tensor(backbone.weights.mean).view(1, -1, 1, 1)
    std = torch.tensor(backbone.weights.std).view(1, -1, 1, 1)
    print(f"load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores, epochs {args.epochs}")
    for seed in args.seeds:
        raw, labels, train, val = data(seed)
        images = (raw - mean) / std
        for kind in ("scratch", "transfer"):
            with seeded(seed):
                if kind == "scratch":
                    net = build_classifier("tinyvgg", (3, 64, 64), 3)
                else:
                    net = copy.deepcopy(backbone.model)
                    net.classifier = torch.nn.Linear(net.classifier.in_features, 3)
            seconds = fit(net, images, labels, train, seed, args.epochs)
            net.eval()
            with torch.no_grad():
                accuracy = (net(images[val]).argmax(1) == labels[val]).float().mean().item()
            times = []
            with torch.no_grad():
                for i in range(200):
                    start = time.perf_counter()
                    F.softmax(net((raw[i % len(raw)][None] - mean) / std), dim=1)
                    times.append(time.perf_counter() - start)
            print(
                f"seed {seed} {kind:8s} held-out {accuracy:6.1%} ({len(val)} pictures)  "
                f"train {seconds:5.1f} s  predict median {statistics.median(times) * 1e3:.2f} ms"
            )


if __name__ == "__main__":
    main()
