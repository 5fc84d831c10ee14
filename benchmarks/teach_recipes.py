"""Fine-tuning recipes for the teach flow's target, tried in a bare torch loop (fast to vary):
the bundled TinyVGG with a new 3-class head on the desk objects, 3 × 30 pictures at 64×64,
6 per class held out (a seeded choice per class), one torch thread. Prints the held-out
accuracy per seed and its mean; docs/PERFORMANCE.md ("Transfer through /api/runs") lists the
recipes tried. The product path itself is measured by benchmarks/teach_transfer.py.

    .venv/bin/python benchmarks/teach_recipes.py "epochs=25"
    .venv/bin/python benchmarks/teach_recipes.py "cycle=True, pad=4"
    .venv/bin/python benchmarks/teach_recipes.py "cycle=True, warm=10, epochs=20, lr=1e-3"

Options (Python keyword syntax): epochs, lr, cycle (one-cycle schedule), pad (random crops with
that much reflection padding), freeze1 (first block frozen), warm (epochs of the head alone
first, lr 1e-2: LP-FT), affine (rotation ±20°, scale ±10 %, shift ±6 px), fill ("reflection" or
"zeros": the mean colour, as images are normalised first), seeds.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from cnncore.datasets.desk_objects import DESK_CLASSES, generate_desk_objects
from cnncore.weights import load_model


def pictures(seed: int):
    found = generate_desk_objects(30, side=64, seed=1000 + seed)
    images = torch.from_numpy(np.stack([p for _, p in found])).permute(0, 3, 1, 2).float() / 255
    labels = torch.tensor([DESK_CLASSES.index(k) for k, _ in found])
    generator = torch.Generator().manual_seed(seed)
    held = [torch.randperm(30, generator=generator)[:6] for _ in range(3)]
    val = torch.cat([torch.nonzero(labels == c).flatten()[held[c]] for c in range(3)])
    train = torch.tensor([i for i in range(len(labels)) if i not in set(val.tolist())])
    return images, labels, train, val


def changed(x, g, o):
    """One batch's augmentation: flips always, then crops or an affine change when asked."""
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if o["pad"]:
        p, side = o["pad"], x.shape[-1]
        padded = F.pad(x, (p, p, p, p), mode="reflect")
        at = [torch.randint(0, 2 * p + 1, (2,), generator=g).tolist() for _ in range(len(x))]
        x = torch.stack([padded[i, :, y : y + side, z : z + side] for i, (y, z) in enumerate(at)])
    if o["affine"]:
        n = len(x)
        angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(20)
        scale = 1 + (torch.rand(n, generator=g) * 2 - 1) * 0.1
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
        theta[:, :, 2] = (torch.rand(n, 2, generator=g) * 2 - 1) * 6 / 32
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode=o["fill"], align_corners=False)
    return x


def fit(net, images, labels, train, seed: int, epochs: int, lr: float, o, cycle: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    learning = [p for n, p in net.named_parameters()
                if p.requires_grad and not (o["freeze1"] and n.startswith("block1"))]  # fmt: skip
    optimiser = torch.optim.Adam(learning, lr)
    steps = epochs * math.ceil(len(train) / 16)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps,
                                                    pct_start=0.15) if cycle else None)  # fmt: skip
    net.train()
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=g)]
        for first in range(0, len(order), 16):
            batch = order[first : first + 16]
            optimiser.zero_grad()
            F.cross_entropy(net(changed(images[batch], g, o)), labels[batch]).backward()
            optimiser.step()
            if schedule:
                schedule.step()


def main() -> None:
    o = {"epochs": 25, "lr": 3e-3, "cycle": False, "pad": 0, "freeze1": False, "warm": 0,
         "affine": False, "fill": "reflection", "seeds": [0, 1, 2, 3, 4]}  # fmt: skip
    o.update(eval(f"dict({sys.argv[1] if len(sys.argv) > 1 else ''})"))  # noqa: S307 (a developer's own command line)
    torch.set_num_threads(1)
    source = load_model("tinyvgg")
    mean = torch.tensor(source.weights.mean).view(1, -1, 1, 1)
    std = torch.tensor(source.weights.std).view(1, -1, 1, 1)
    accuracies, seconds = [], []
    for seed in o["seeds"]:
        raw, labels, train, val = pictures(seed)
        images = (raw - mean) / std
        torch.manual_seed(seed)
        net = copy.deepcopy(source.model)
        net.classifier = torch.nn.Linear(net.classifier.in_features, 3)
        start = time.perf_counter()
        if o["warm"]:  # the head alone first (LP-FT), then everything
            for name, p in net.named_parameters():
                p.requires_grad_(name.startswith("classifier"))
            fit(net, images, labels, train, seed + 100, o["warm"], 1e-2, o, False)
            for p in net.parameters():
                p.requires_grad_(True)
        fit(net, images, labels, train, seed, o["epochs"], o["lr"], o, o["cycle"])
        seconds.append(time.perf_counter() - start)
        net.eval()
        with torch.no_grad():
            accuracies.append((net(images[val]).argmax(1) == labels[val]).float().mean().item())
    print(sys.argv[1:] or ["defaults"], [f"{a:.1%}" for a in accuracies],
          f"mean {statistics.mean(accuracies):.1%}", [f"{s:.0f} s" for s in seconds],
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
