"""AUROC of the familiarity score per bundled classifier and outlier set (docs/PERFORMANCE.md).

    .venv/bin/python benchmarks/familiarity_auroc.py [--count N]

Not a timing: the figure is how well the stored statistics tell held-out training-distribution
pictures (the odd half of the validation split, `cnncore.familiarity_sets`) from each outlier
set, all through the page's preprocessing. Also printed: the share of held-out pictures called
"unlike" at the stored threshold (chosen on the other half for 95 % to pass) and the share of
each outlier set called "unlike". Deterministic: fixed seeds, CPU.

Then the cost a /features answer pays for it: `familiarity()` from the network input the maps
were computed from (as the route calls it), flower photo, against the feature maps of the same
request (`learned_feature_maps`, the baseline), interleaved, 1 thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.timing import interleaved, spread  # noqa: E402
from cnncore.familiarity import distances, familiarity, model_inputs  # noqa: E402
from cnncore.familiarity_sets import OUTLIER_SETS, auroc, held_out, outlier_pictures  # noqa: E402
from cnncore.features import learned_feature_maps, trace_layers  # noqa: E402
from cnncore.images import sample_image  # noqa: E402
from cnncore.weights import load_model  # noqa: E402


def measure(name: str, count: int) -> list[tuple[str, float, float]]:
    """(outlier set, AUROC, share flagged) per set; first row: the held-out pictures."""
    loaded = load_model(name)
    meta = loaded.weights.trained
    threshold = meta.familiarity["threshold"]
    side = loaded.weights.input_shape[-1]
    inside = distances(loaded, model_inputs(loaded.weights, held_out(meta).evaluation))
    rows = [("held-out", float("nan"), float((inside > threshold).double().mean()))]
    for kind in OUTLIER_SETS[name]:
        pictures = outlier_pictures(kind, count, side)
        outside = distances(loaded, model_inputs(loaded.weights, pictures))
        rows.append((kind, auroc(inside, outside), float((outside > threshold).double().mean())))
    return rows


def cost(name: str, repeats: int = 30) -> tuple[dict, dict]:
    """Milliseconds of familiarity() from the request's network input (as the route does) and of
    the request's feature maps, flower photo."""
    loaded = load_model(name)
    layers = trace_layers(loaded.model)
    flower = sample_image("flower")
    given = learned_feature_maps(loaded, layers, flower).network_input
    times = interleaved(
        {
            "familiarity": lambda: familiarity(loaded, given),
            "maps": lambda: learned_feature_maps(loaded, layers, flower),
        },
        repeats,
        warmup=3,
    )
    own, maps = (spread([t * 1000 for t in times[k]]) for k in ("familiarity", "maps"))
    return own, maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="pictures per outlier set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | set | pictures | AUROC | called unlike |")
    print("|---|---|---|---|---|")
    for name in OUTLIER_SETS:
        for kind, area, flagged in measure(name, args.count):
            shown = "–" if kind == "held-out" else f"{area:.4f}"
            print(f"| {name} | {kind} | {args.count if kind != 'held-out' else ''} "
                  f"| {shown} | {flagged:.1%} |")  # fmt: skip
    print("\n| model | familiarity ms (median / p95) | feature maps ms | ratio of medians |")
    print("|---|---|---|---|")
    for name in OUTLIER_SETS:
        own, maps = cost(name)
        print(f"| {name} | {own['median']} / {own['p95']} | {maps['median']} / {maps['p95']} "
              f"| {own['median'] / maps['median']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
