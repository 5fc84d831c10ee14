"""Redraw cost of a training chart: the old SVG line chart (static/js/chart.js) against the uPlot
chart that now draws /train (static/js/train/run_chart.js), in headless Chromium, same run.

Opens /train (so both modules load under the page's CSP), creates one chart of each kind at the
page's size, and times `update()` with two series of N points (a training loss per step and a
validation loss every 100 steps), followed by a forced layout so the browser's work is counted,
not only the script's. /train draws at most MAX_POINTS (1,000) buckets of a run; the larger N
show what each renderer costs without that cap (the comparison chart, a long run). Prints the
median and p95 per N and the ratio old ÷ new measured in the same run.

    .venv/bin/python benchmarks/train_charts.py [--repeats 30] [--points 100 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser"), str(ROOT / "benchmarks")]
from live import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server  # noqa: E402
from timing import spread  # noqa: E402

# Runs in the page: imports both chart modules, builds N-point data, times update()s.
TIME_UPDATES = """async ([points, repeats]) => {
  const { createLineChart } = await import("/static/js/chart.js");
  const { createRunChart } = await import("/static/js/train/run_chart.js");
  const host = document.querySelector("#run .run-charts");
  const x = Array.from({ length: points + 1 }, (_, i) => i);
  const decay = (i) => Math.exp((-3 * i) / points);
  const make = (shift) => ({ x, series: [
    { name: "train", values: x.map((i) => (i ? 2.3 * decay(i) + 0.1 * Math.sin(i + shift) : NaN)) },
    { name: "val", values: x.map((i) => (i && i % 100 === 0 ? 2.0 * decay(i) : NaN)) },
  ] });
  const times = {};
  // one renderer at a time, alone on the page: neither pays for repainting the other
  for (const [kind, create] of [["svg", createLineChart], ["uplot", createRunChart]]) {
    const box = document.createElement("div");
    box.className = "chart-box";
    box.style.width = "560px";
    host.prepend(box);
    const chart = create(box, {});
    times[kind] = [];
    for (let r = 0; r < repeats + 3; r++) {
      const data = make(r);
      const began = performance.now();
      chart.update(data);
      document.body.getBoundingClientRect(); // layout now: the browser's share counts too
      await new Promise(requestAnimationFrame); // and the frame that paints it
      if (r >= 3) times[kind].push(performance.now() - began);
    }
    box.remove();
  }
  return times;
}"""


def measure(base: str, sizes: list[int], repeats: int) -> list[dict]:
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{base}/train?lang=en")
        page.wait_for_selector("body[data-ready=true]")
        for points in sizes:
            times = page.evaluate(TIME_UPDATES, [points, repeats])
            old, new = spread(times["svg"]), spread(times["uplot"])
            ratio = round(old["median"] / max(new["median"], 0.1), 1)
            rows.append({"points": points, "svg_ms": old, "uplot_ms": new, "svg_over_uplot": ratio})
        browser.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--points", type=int, nargs="+", default=[100, 1000, 10000, 50000])
    args = parser.parse_args()
    base, server, thread = start_server()
    try:
        rows = measure(base, args.points, args.repeats)
    finally:
        stop_server(server, thread)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
