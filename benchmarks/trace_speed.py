"""Cost of a conv2d step trace next to what torch itself does on the same input.

Input 3×64×64, 8 kernels 3×3, bias, padding 1, float64 (the trace's dtype), one run:
- baseline: `F.unfold` (the windows) + `F.conv2d` (the output) on that input;
- trace: `cnncore.trace.trace_conv2d`, which also keeps every product (8·64·64·27 = 884,736),
  the per-channel sums, the padded input and the window coordinates (the padded-tap mask is
  derived on access);
- answer: the trace turned into the API's JSON body (`conv_trace_body` + `json.dumps`), for
  scale only: the route refuses a trace this large by default (`max_trace_products`);
- body: `conv_trace_body` alone with Python's garbage collector paused (as the route builds it,
  `app.schemas.common.gc_paused`) and on, interleaved, for this trace and for an API-sized one
  (3×32×32, 4 kernels 3×3, padding 1), with the whole app imported as in the server.
Baseline and trace run interleaved after warm-up rounds, so a burst of load from other work on a
shared machine lands on both; each figure is the median over `--repeats` rounds (the minimum,
the least disturbed round, in brackets), once per thread count, and the median of the per-round
ratios (trace over the baseline run just before it: the two share the load of that moment).
Target: trace / baseline ≤ 3.

    .venv/bin/python benchmarks/trace_speed.py [--repeats 300] [--threads 1,2]
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

import app.main  # noqa: E402, F401  (the server's modules: the objects a collection walks)
from app.schemas.conv import conv_trace_body  # noqa: E402
from cnncore.trace import trace_conv2d  # noqa: E402

TARGET = 3.0


def measure(repeats: int, warmup: int, x, w, b) -> dict[str, list[float]]:
    def baseline() -> None:
        F.unfold(x[None], 3, padding=1)
        F.conv2d(x[None], w, b, padding=1)

    def trace() -> None:
        trace_conv2d(x, w, b, padding=1)

    return interleaved({"baseline": baseline, "trace": trace}, repeats, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", default="1,2", help="torch intra-op threads, one run each")
    parser.add_argument("--answers", type=int, default=3, help="rounds of the JSON answer")
    parser.add_argument("--bodies", type=int, default=5, help="rounds of each body timing")
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 64, 64, generator=generator, dtype=torch.float64)
    w = torch.randn(8, 3, 3, 3, generator=generator, dtype=torch.float64)
    b = torch.randn(8, generator=generator, dtype=torch.float64)
    traced = trace_conv2d(x, w, b, padding=1)
    torch.testing.assert_close(traced.output, F.conv2d(x[None], w, b, padding=1)[0])

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, input 3×64×64, 8 kernels 3×3, "
        f"pad 1, float64; {args.repeats} interleaved rounds"
    )
    print(
        "threads  baseline median (min)   trace median (min)    ratio of medians (of mins)"
        "  median per-round ratio"
    )
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        times = measure(args.repeats, args.warmup, x, w, b)
        med = {name: statistics.median(values) for name, values in times.items()}
        low = {name: min(values) for name, values in times.items()}
        ratio = med["trace"] / med["baseline"]
        rounds = zip(times["trace"], times["baseline"], strict=True)
        paired = statistics.median(trace_s / base_s for trace_s, base_s in rounds)
        print(
            f"{threads:7d}  {med['baseline'] * 1e3:7.3f} ms ({low['baseline'] * 1e3:.3f})"
            f"   {med['trace'] * 1e3:7.3f} ms ({low['trace'] * 1e3:.3f})"
            f"    {ratio:5.2f}x ({low['trace'] / low['baseline']:.2f}x)  {paired:5.2f}x"
            f"  target <= {TARGET:g}x {'met' if ratio <= TARGET else 'NOT met'}"
        )
    answer = [
        seconds(lambda: json.dumps(conv_trace_body(trace_conv2d(x, w, b, padding=1))))
        for _ in range(args.answers)
    ]
    print(
        f"JSON answer (trace + body + dumps): {statistics.median(answer) * 1e3:.0f} ms for "
        f"{traced.products.numel():,} products (over the API's default limit)"
    )
    small = trace_conv2d(x[:, :32, :32], w[:4], b[:4], padding=1)
    for label, body_of in (("3x32x32, 4 kernels", small), ("3x64x64, 8 kernels", traced)):
        paused, on = [], []
        for _ in range(args.bodies):
            paused.append(seconds(lambda body_of=body_of: conv_trace_body(body_of)))
            on.append(seconds(lambda body_of=body_of: conv_trace_body.__wrapped__(body_of)))
        print(
            f"body {label} ({len(conv_trace_body(body_of)['steps']):,} steps): collector on "
            f"{statistics.median(on) * 1e3:.0f} ms (min {min(on) * 1e3:.0f}), paused "
            f"{statistics.median(paused) * 1e3:.0f} ms (min {min(paused) * 1e3:.0f}), "
            f"{statistics.median(on) / statistics.median(paused):.1f}x"
        )


if __name__ == "__main__":
    main()
