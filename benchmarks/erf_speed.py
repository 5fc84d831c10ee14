"""Effective receptive field speed: ResNet-18 at 224×224, averaged over 16 random inputs.

`cnncore.effective_rf.effective_receptive_field` draws the 16 inputs as one batch, runs the graph
up to the chosen layer (default: layer4's last ReLU, the deepest map before global pooling) and
differentiates the unit's sum over the batch once. Baselines, in the same process and rounds:

- `train step`: one forward + backward of the whole network on a batch of 16 at 224×224
  (`model(x).sum().backward()`, parameter gradients included), what a training step costs;
- `input gradient`: the same forward, differentiated with respect to the input only
  (`torch.autograd.grad`), the work an ERF cannot avoid;
- `loop` (one round): the same ERF as 16 separate single-input backward passes, what the batched
  pass replaces.

Rounds alternate the measures after a warm-up; medians are reported, with CPU seconds too (the
machine's other load hardly moves those). Exit status 1 if the ERF costs more than 1.5× a train
step.

    .venv/bin/python benchmarks/erf_speed.py [--rounds 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncore.effective_rf import effective_receptive_field  # noqa: E402
from cnncore.models import build_model  # noqa: E402

SHAPE = (3, 224, 224)
SAMPLES = 16
TARGET_RATIO = 1.5


def timed(work: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("resnet18").to(device).eval()
    batch = torch.randn(SAMPLES, *SHAPE, device=device)

    def erf() -> None:
        effective_receptive_field(model, SHAPE, samples=SAMPLES, seed=1)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        model(batch).sum().backward()

    def input_gradient() -> None:
        x = batch.clone().requires_grad_(True)
        torch.autograd.grad(model(x).sum(), x)

    def loop() -> None:
        layer4 = torch.nn.Sequential(*list(model.children())[:-3])  # up to layer4, as the ERF
        for sample in batch:
            x = sample[None].clone().requires_grad_(True)
            torch.autograd.grad(layer4(x)[0, :, 3, 3].sum(), x)

    measures = {
        "ERF (batched, 16 inputs)": erf,
        "train step (batch 16)": train_step,
        "input gradient (batch 16)": input_gradient,
    }
    for work in measures.values():  # warm-up: allocator, oneDNN kernels
        work()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    for _ in range(args.rounds):
        for name, work in measures.items():
            results[name].append(timed(work, device))
    results["ERF as a loop of 16 backward passes (1 round)"] = [timed(loop, device)]

    print(
        f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.rounds} rounds"
    )
    print(f"{'measure':48} {'wall (median)':>14} {'CPU s (median)':>15}")
    medians = {}
    for name, values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        medians[name] = (wall, cpu)
        print(f"{name:48} {wall:13.3f}s {cpu:14.2f}s")
    erf_wall, erf_cpu = medians["ERF (batched, 16 inputs)"]
    base_wall, base_cpu = medians["train step (batch 16)"]
    ratio = erf_wall / base_wall
    print(f"ERF / train step: {ratio:.2f} (wall), {erf_cpu / base_cpu:.2f} (CPU)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
