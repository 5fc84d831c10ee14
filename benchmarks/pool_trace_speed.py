"""Cost of a pooling trace next to what torch itself does on the same input.

Input 8×64×64, 2×2 windows, stride 2, float64 (the trace's dtype), one run, per kind:
- baseline: `F.unfold` (the windows) + torch's pooling on that input (`F.max_pool2d` with
  `return_indices`, `F.avg_pool2d`, `F.lp_pool2d` with p = 2);
- trace: `cnncore.pooling.trace_pool2d`, which also keeps every window's values, the input
  coordinates of its rows and columns, the padded-cell mask, the argmax coordinates (max) or the
  divisors (average);
- answer: the trace with a routed gradient turned into the API's JSON body, for scale only.
Baseline and trace run interleaved after warm-up rounds, so a burst of load from other work on a
shared machine lands on both; each figure is the median over `--repeats` rounds (the minimum in
brackets), once per thread count. Target (issue 3): trace / baseline ≤ 3.

    .venv/bin/python benchmarks/pool_trace_speed.py [--repeats 300] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import interleaved, seconds  # noqa: E402

from app.schemas.pool import pool_trace_body  # noqa: E402
from cnncore.pooling import pool_backward, trace_pool2d  # noqa: E402

TARGET = 3.0
TORCH_POOLS = {
    "max": lambda x: F.max_pool2d(x, 2, return_indices=True),
    "avg": lambda x: F.avg_pool2d(x, 2),
    "l2": lambda x: F.lp_pool2d(x, 2, 2),
}


def measure(kind: str, repeats: int, warmup: int, x) -> dict[str, list[float]]:
    def baseline() -> None:
        F.unfold(x[:, None], 2, stride=2)
        TORCH_POOLS[kind](x[None])

    def trace() -> None:
        trace_pool2d(x, kind, 2)

    return interleaved({"baseline": baseline, "trace": trace}, repeats, warmup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", default="1,2", help="torch intra-op threads, one run each")
    parser.add_argument("--answers", type=int, default=3, help="rounds of the JSON answer")
    args = parser.parse_args()

    x = torch.rand(8, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for kind in TORCH_POOLS:
        expected = TORCH_POOLS[kind](x[None])
        expected = expected[0] if kind == "max" else expected
        torch.testing.assert_close(trace_pool2d(x, kind, 2).output, expected[0])

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, input 8×64×64, 2×2 windows, "
          f"stride 2, float64; {args.repeats} interleaved rounds")
    print("kind threads  baseline median (min)   trace median (min)    ratio of medians (of mins)")
    missed = False
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for kind in TORCH_POOLS:
            times = measure(kind, args.repeats, args.warmup, x)
            med = {name: statistics.median(values) for name, values in times.items()}
            low = {name: min(values) for name, values in times.items()}
            ratio = med["trace"] / med["baseline"]
            missed |= ratio > TARGET
            print(
                f"{kind:4s} {threads:7d}  {med['baseline'] * 1e3:7.3f} ms "
                f"({low['baseline'] * 1e3:.3f})   {med['trace'] * 1e3:7.3f} ms "
                f"({low['trace'] * 1e3:.3f})"
                f"    {ratio:5.2f}x ({low['trace'] / low['baseline']:.2f}x)"
                f"  target <= {TARGET:g}x {'met' if ratio <= TARGET else 'NOT met'}"
            )

    grad = torch.ones(8, 32, 32, dtype=torch.float64)

    def answer() -> None:
        traced = trace_pool2d(x, "max", 2)
        json.dumps(pool_trace_body(traced, pool_backward(traced, grad)))

    answers = [seconds(answer) for _ in range(args.answers)]
    print(f"JSON answer with routed gradient (trace + body + dumps): "
          f"{statistics.median(answers) * 1e3:.0f} ms for {8 * 32 * 32:,} steps")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
