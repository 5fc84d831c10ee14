"""Loading installed ImageNet weights, next to building the same model with its initialisation.

Real ImageNet files cannot be downloaded here, so each model gets a generated file of the exact
published layout (torchvision's keys, shapes and dtypes from tests/cnncore/fixtures, random
values), installed with `cnncore.pretrained_files.import_weights` into a temporary data folder
as `cnnviz weights add` would. Timed per model, alternating in each round:
- load: `load_pretrained(name, "imagenet")` — metadata, memory-mapped safetensors read, the model
  built on the meta device and the tensors assigned, moved to the CPU in eval mode;
- baseline: `load_pretrained(name, "initialisation")` — what /features did before: the model
  built with its seeded initialisation (every weight drawn from the generator).
The file is read from the page cache after the first round (as on a server that loaded it
before); the first, colder round is reported apart. Target (issue 13): resnet50 load ≤ 1 s;
exit status 1 when missed.

    .venv/bin/python benchmarks/weights_load.py [--models resnet50 vgg16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnncore.pretrained import load_pretrained  # noqa: E402
from cnncore.pretrained_files import import_weights  # noqa: E402
from tests.cnncore.torchvision_reference import FIXTURES, generated_state  # noqa: E402

TARGET_S = {"resnet50": 1.0}


def install(directory: Path, name: str, scratch: Path) -> int:
    """A generated file of the published layout, installed; its size in bytes."""
    layout = json.loads(FIXTURES.read_text())[name]["layout"]
    source = scratch / f"{name}.pth"
    torch.save(generated_state(layout), source)
    path = import_weights(directory, name, source)
    source.unlink()
    return path.stat().st_size


def timed(name: str, choice: str, directory: Path) -> float:
    start = time.perf_counter()
    loaded = load_pretrained(name, choice, directory=directory)
    spent = time.perf_counter() - start
    assert loaded.weights.source == ("imported" if choice == "imagenet" else "initialisation")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg16", "resnet18"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    missed = False
    with tempfile.TemporaryDirectory() as folder:
        directory, scratch = Path(folder) / "weights", Path(folder)
        for name in args.models:
            size = install(directory, name, scratch)
            first = timed(name, "imagenet", directory)
            loads, bases = [], []
            for index in range(args.rounds):
                if index % 2:
                    bases.append(timed(name, "initialisation", directory))
                loads.append(timed(name, "imagenet", directory))
                if not index % 2:
                    bases.append(timed(name, "initialisation", directory))
            load, base = statistics.median(loads), statistics.median(bases)
            target = TARGET_S.get(name)
            verdict = "" if target is None else (" ok" if load <= target else " MISSED")
            missed |= target is not None and load > target
            print(f"{name:10s} file {size / 1e6:6.1f} MB  first load {first:.3f} s  "
                  f"load {load:.3f} s (min {min(loads):.3f})  initialisation {base:.3f} s  "
                  f"load / initialisation {load / base:.2f}"
                  f"{'' if target is None else f'  target ≤ {target} s'}{verdict}")  # fmt: skip
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
