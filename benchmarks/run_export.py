"""Exporting a run (cnncore.export): how long each format takes, and the peak memory, per model.

For each model (a run's network at its switches: batch norm and dropout on; weights drawn as in
tests/cnncore/test_export.py), in a fresh process of its own so that the peak memory is its own:
- baseline: writing the weights alone (safetensors bytes of the state dict), the least an export
  can cost, and the TorchScript exporter (`torch.onnx.export(dynamo=False)`, deprecated);
- each format of `write_export`, into a file as the server writes it: safetensors, py, card,
  onnx (the torch.export-based exporter, opset 18) and zip (all five, the Export menu's first);
- the process's peak RSS over the one after building the model (`ru_maxrss`).
Ratios: onnx ÷ TorchScript export (nan where the TorchScript exporter cannot export the network:
AlexNet's 6×6 adaptive pool of a 1×1 map), zip ÷ onnx. AlexNet is the largest network a run can
train (57 M parameters whatever the input size: its classifier reads a 6×6 adaptive pool).

    .venv/bin/python benchmarks/run_export.py [--models alexnet resnet18 lenet5] [--rounds 1]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMATS = ("safetensors", "py", "card", "onnx", "zip")


def _seconds(work, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure(model: str, rounds: int) -> dict:
    import torch
    from safetensors.torch import save

    from benchmarks.scratch import scratch_folder
    from cnncore.export.bundle import export_run, write_export
    from tests.cnncore.test_export import checkpoint_of, facts

    torch.set_num_threads(1)  # as the server's request threads share the machine
    checkpoint = checkpoint_of(model, switches=True)
    shape = checkpoint.trained.input_shape
    # imports, fx and the ONNX exporter's first-use set-up (~20 s of registry building), on a
    # small network, not measured
    export_run(checkpoint_of("lenet5", switches=False), facts(), "zip")
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    state = {k: v.contiguous() for k, v in checkpoint.model.state_dict().items()}
    figures = {"model": model, "input": list(shape),
               "params": sum(p.numel() for p in checkpoint.model.parameters())}  # fmt: skip
    figures["weights_alone_s"] = _seconds(lambda: save(state), rounds)

    def torchscript() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(checkpoint.model, (torch.zeros(1, *shape),), io.BytesIO(),
                              dynamo=False, opset_version=18)  # fmt: skip

    try:
        figures["torchscript_onnx_s"] = _seconds(torchscript, rounds)
    except Exception:  # noqa: BLE001 (AlexNet: "adaptive_avg_pool2d, output size that are not
        figures["torchscript_onnx_s"] = float("nan")  # factor of input size" — it cannot)
    target = scratch_folder("cnnviz-export-bench-") / "export"
    for fmt in FORMATS:

        def once(f: str = fmt) -> None:  # as the server does: into a file
            with target.open("wb") as out:
                write_export(checkpoint, facts(), f, out)

        figures[f"{fmt}_s"] = _seconds(once, rounds)
        figures[f"{fmt}_bytes"] = target.stat().st_size
    target.unlink()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures["peak_over_model_mb"] = round((peak - rss_built) / 1024, 1)  # ru_maxrss is in KiB
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["alexnet", "resnet18", "lenet5"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's model
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.rounds)))
        return 0
    print(f"{'model':<13}{'params':>11}{'weights':>9}{'py':>8}{'card':>8}{'onnx':>8}"
          f"{'TorchScr.':>10}{'zip':>8}{'onnx/TS':>9}{'zip/onnx':>9}{'zip MB':>8}"
          f"{'peak MB':>9}")  # fmt: skip
    for model in args.models:
        child = subprocess.run(
            [sys.executable, __file__, "--one", model, "--rounds", str(args.rounds)],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        f = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{model:<13}{f['params']:>11,}{f['weights_alone_s']:>9.3f}{f['py_s']:>8.3f}"
              f"{f['card_s']:>8.3f}{f['onnx_s']:>8.2f}{f['torchscript_onnx_s']:>10.2f}"
              f"{f['zip_s']:>8.2f}{f['onnx_s'] / f['torchscript_onnx_s']:>9.2f}"
              f"{f['zip_s'] / f['onnx_s']:>9.2f}{f['zip_bytes'] / 1e6:>8.1f}"
              f"{f['peak_over_model_mb']:>9.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
