"""Model summaries: their cost next to a bare forward pass, and what the meta device saves.

For each zoo model at its default input (batch 1, eval mode, `torch.no_grad()`, CPU), in one run:
- build: constructing the model with real weights (CPU) vs on `torch.device("meta")`;
- forward: a bare forward pass of the real model on a zero image;
- summary (real): `cnncore.inspect.summarize` on the same real model (hooks on every layer),
  and its ratio to the bare forward — the hooks' overhead;
- summary (meta): build on meta + summarize, which is what `/api/models/{name}/summary` does on a
  cache miss, and its ratio to the bare forward of the real model.
The timed actions run interleaved (build, build, forward, summary, summary, build, ...) after three
warm-up rounds, and each figure is the minimum over `--repeats` rounds: on a shared machine the
minimum is the run least disturbed by other work (the `timeit` convention), and interleaving keeps
a burst of load from landing on one column only.

    .venv/bin/python benchmarks/summaries.py [--repeats 7] [--models vgg16,resnet50]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import seconds  # noqa: E402

from cnncore.inspect import summarize  # noqa: E402
from cnncore.models import build_model, get_model_info, list_models  # noqa: E402


def measure(name: str, repeats: int) -> dict[str, float]:
    shape = get_model_info(name).default_input.as_tuple()
    model = build_model(name)
    x = torch.zeros(1, *shape)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    actions = {
        "build_cpu": lambda: build_model(name),
        "build_meta": lambda: build_model(name, device="meta"),
        "forward": forward,
        "summary_real": lambda: summarize(model, shape),
        "summary_meta": lambda: summarize(build_model(name, device="meta"), shape),
    }
    for _ in range(3):  # warm-up: thread pool, kernel selection, meta-kernel registration
        for action in actions.values():
            action()
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(repeats):
        for key, action in actions.items():
            best[key] = min(best[key], seconds(action))
    return best


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default=",".join(list_models()))
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| model | build (CPU) | build (meta) | bare forward | summary (real) | ratio "
        "| summary (meta) | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        t = measure(name, args.repeats)
        print(
            f"| {name} | {ms(t['build_cpu'])} | {ms(t['build_meta'])} | {ms(t['forward'])} "
            f"| {ms(t['summary_real'])} | {t['summary_real'] / t['forward']:.2f}× "
            f"| {ms(t['summary_meta'])} | {t['summary_meta'] / t['forward']:.2f}× |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
