"""How fast each explorer control redraws its page, in headless Chromium.

Serves the app on a free loopback port and opens each explorer (/conv, /pool, /activations,
/loss, /receptive-field) at 1366×768. For every control it flips the control between two values
`--repeats` times; each change is timed in the page from the input event the control dispatches
to the `cnnviz:redrawn` performance mark the page sets once the new numbers are painted
(static/js/redrawn.js). Each change is split into

- wait: input event → the page's first API request starts (debounce, request building),
- network: that request's start → the last response's end (server work and the transfer),
- draw: last response → the mark (JSON parsing, DOM and canvas work, the paint),
- cpu: the renderer main thread's CPU time over the change (Chromium's ThreadTime): the page's
  own work, which the machine's load stretches into the wall-clock figures above,

with the bytes the answers carried. Baseline in the same run: the page's own last API request
sent again from the page with `fetch` and parsed (`response.json()`), no drawing: the floor the
network and the server set for that control. The ratio is the control's median over that floor.

Target (issue 12): every control's median ≤ 100 ms. Exit status 1 when one misses it.
The receptive field's effective field (a backward pass through the network on a picture) is
measured on its own, as "erf" (not a redraw: the box is drawn first, the heatmap follows).

With `--compare URL` the same pages on another server (an earlier commit under `cnnviz serve`)
are timed in the same run, change for change, and the table adds their median and the speed-up.

    .venv/bin/python benchmarks/explorer_latency.py [--repeats 12] [--pages conv,pool,...]
        [--compare http://127.0.0.1:8732]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser"), str(ROOT / "benchmarks")]
from live import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server  # noqa: E402
from timing import spread  # noqa: E402

TARGET_MS = 100.0

# (page query, [(control selector, event, value A, value B, mark detail)])
PAGES = {
    "conv": (
        "/conv?lang=en&input=digit&size=8",
        [
            ("#c-size", "change", "9", "8", "stage"),
            ("#c-kernel", "change", "5", "3", "stage"),
            ("#c-stride", "change", "2", "1", "stage"),
            ("#c-padding", "change", "1", "valid", "stage"),
            ("#c-dilation", "change", "2", "1", "stage"),
            ("#c-filters", "change", "2", "1", "stage"),
            ("#c-activation", "change", "relu", "none", "stage"),
            ("#c-bias", "change", True, False, "stage"),
            ("#c-channels", "change", "3", "1", "stage"),
            ("#c-transposed", "change", True, False, "stage"),
        ],
    ),
    "pool": (
        "/pool?lang=en",
        [
            ("#c-size", "change", "9", "8", "stage"),
            ("#c-kind", "change", "avg", "max", "stage"),
            ("#c-kernel", "change", "3", "2", "stage"),
            ("#c-padding", "change", "1", "0", "stage"),
        ],
    ),
    "activations": (
        "/activations?lang=en&fn=leaky_relu&deep=sigmoid&compare=relu",
        [
            ("#c-fn", "change", "elu", "leaky_relu", "curve"),
            ("#c-slope", "input", "0.3", "0.1", "curve"),
            ("#c-stop", "change", "8", "6", "curve"),
            ("#c-depth", "input", "30", "20", "deep"),
            ("#c-width", "change", "64", "32", "deep"),
            ("#c-init", "change", "xavier", "kaiming", "deep"),
        ],
    ),
    "loss": (
        "/loss?lang=en",
        [
            ("#c-kind", "change", "focal", "cross_entropy", "loss"),
            ("#c-classes", "change", "5", "4", "loss"),
            ("#c-temperature", "input", "2", "1", "loss"),
            ("#c-base", "change", "2", "e", "loss"),
        ],
    ),
    "receptive-field": (
        "/receptive-field?lang=en&model=tinyvgg&sample=flower&weights=initialisation",
        [
            ("#c-layer", "change", "block1.conv1", "block2.conv2", "box"),
            ("#c-depth", "input", "2", "6", "box"),
            ("#c-model", "change", "lenet5", "tinyvgg", "box"),
        ],
    ),
}

# Runs in the page: change one control, resolve with the timings once its redraw mark is set.
CHANGE = """async ([selector, event, value, detail]) => {
  const control = document.querySelector(selector);
  const start = performance.now();
  const marked = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no redraw after ${selector}`)), 60000);
    const observer = new PerformanceObserver((list) => {
      const mark = list.getEntries().find((m) => m.detail === detail && m.startTime > start);
      if (!mark) return;
      clearTimeout(timer);
      observer.disconnect();
      resolve(mark);
    });
    observer.observe({ type: "mark" });
  });
  if (control.type === "checkbox") control.checked = value;
  else control.value = value;
  control.dispatchEvent(new Event(event, { bubbles: true }));
  const mark = await marked;
  const loads = performance.getEntriesByType("resource").filter(
    (r) => r.startTime > start && r.responseEnd <= mark.startTime && r.name.includes("/api/"));
  const first = loads.length ? Math.min(...loads.map((r) => r.startTime)) : mark.startTime;
  const last = loads.length ? Math.max(...loads.map((r) => r.responseEnd)) : first;
  performance.clearResourceTimings();
  return {
    total: mark.startTime - start, wait: first - start, network: last - first,
    draw: mark.startTime - last, bytes: loads.reduce((sum, r) => sum + r.encodedBodySize, 0),
    requests: loads.length,
  };
}"""

# Runs in the page: the bare request (method, URL, body), sent and parsed, no drawing.
BARE = """async ([method, url, body]) => {
  const start = performance.now();
  const init = { method };
  if (body !== null) Object.assign(init, { body, headers: { "Content-Type": "application/json" } });
  const answer = await fetch(url, init);
  await answer.json();
  return performance.now() - start;
}"""

# Runs in the page: ms until the receptive field's heavy request is done (results not busy).
ERF_WAIT = """() => new Promise((resolve) => {
  const busy = () => document.getElementById('results').getAttribute('aria-busy') === 'true';
  const start = performance.now();
  const poll = () => (busy() ? setTimeout(poll, 5) : resolve(performance.now() - start));
  poll();
})"""

SETTLE = """() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 150)))"""


class Tab:
    """One explorer page on one server, timing its controls (and the renderer's CPU time)."""

    def __init__(self, browser, base: str, query: str):
        self.page = browser.new_page(viewport={"width": 1366, "height": 768})
        self.sent: list[tuple[str, str, str | None]] = []
        self.page.on("request", self._record)
        self.cdp = self.page.context.new_cdp_session(self.page)
        self.cdp.send("Performance.enable")
        self.page.goto(base + query)
        self.page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        self.page.evaluate(SETTLE)

    def _record(self, request):
        if "/api/" in request.url and request.resource_type == "fetch":
            self.sent.append((request.method, request.url, request.post_data))

    def _cpu(self) -> float:
        """The renderer main thread's CPU seconds so far (Chromium's ThreadTime)."""
        metrics = self.cdp.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in metrics if m["name"] == "ThreadTime")

    def change(self, control: tuple, value, erf: bool) -> tuple[dict, tuple | None]:
        """Timings of one change (cpu: main-thread ms until the mark) and the last request."""
        selector, event, _, _, detail = control
        self.sent.clear()
        before = self._cpu()
        timing = self.page.evaluate(CHANGE, [selector, event, value, detail])
        timing["cpu"] = (self._cpu() - before) * 1000
        request = self.sent[-1] if self.sent else None
        if erf:  # the heatmap that follows the box
            timing["erf"] = timing["total"] + self.page.evaluate(ERF_WAIT)
        self.page.evaluate(SETTLE)
        if request and "/effective" in request[1]:  # the box's request came before the heatmap's
            request = next(r for r in reversed(self.sent) if "/effective" not in r[1])
        return timing, request

    def bare(self, request: tuple) -> float:
        took = self.page.evaluate(BARE, list(request))
        self.page.evaluate(SETTLE)
        return took


def measure_page(browser, bases: dict[str, str], name: str, repeats: int) -> dict:
    """{label: {control: summary}} for each server in `bases`, changes interleaved round by
    round (label by label, alternating the order) so that load bursts hit all alike."""
    query, controls = PAGES[name]
    tabs = {label: Tab(browser, base, query) for label, base in bases.items()}
    results: dict[str, dict] = {label: {} for label in bases}
    erf = name == "receptive-field"
    for control in controls:
        changes = {label: [] for label in bases}
        bare = {label: [] for label in bases}
        for index in range(repeats + 1):  # the first round warms up
            value = control[2] if index % 2 == 0 else control[3]
            order = list(tabs.items())
            for label, tab in order if index % 2 == 0 else order[::-1]:
                timing, request = tab.change(control, value, erf)
                if index == 0 or request is None:
                    continue
                changes[label].append(timing)
                bare[label].append(tab.bare(request))
        key = f"{name} {control[0].removeprefix('#c-')}"
        for label in bases:
            results[label][key] = summarise(changes[label], bare[label])
    for tab in tabs.values():
        tab.page.close()
    return results


def summarise(changes: list[dict], bare: list[float]) -> dict:
    parts = {
        part: round(statistics.median(c[part] for c in changes), 1)
        for part in ("wait", "network", "draw", "cpu")
    }
    total = spread([c["total"] for c in changes])
    floor = statistics.median(bare) if bare else None
    summary = {
        "total": total,
        "parts": parts,
        "kB": round(statistics.median(c["bytes"] for c in changes) / 1000, 1),
        "bare_request": round(floor, 1) if floor else None,
        "ratio": round(total["median"] / floor, 2) if floor else None,
    }
    if "erf" in changes[0]:
        summary["erf"] = spread([c["erf"] for c in changes])
    return summary


def print_table(results: dict[str, dict], other: dict[str, dict] | None) -> list[str]:
    """The table; returns the controls whose median misses the target."""
    head = f"{'control':<26}{'median':>8}{'p95':>8}{'wait':>7}{'net':>7}{'draw':>7}{'cpu':>7}"
    head += f"{'kB':>7}{'bare':>7}{'ratio':>7}" + (f"{'before':>8}{'×':>6}" if other else "")
    print("\n" + head)
    missed = []
    for key, row in results.items():
        total, parts = row["total"], row["parts"]
        line = f"{key:<26}{total['median']:>8}{total['p95']:>8}{parts['wait']:>7}"
        line += f"{parts['network']:>7}{parts['draw']:>7}{parts['cpu']:>7}{row['kB']:>7}"
        line += f"{row['bare_request']:>7}{row['ratio']:>7}"
        if other:
            before = other[key]["total"]["median"]
            line += f"{before:>8}{before / total['median']:>6.2f}"
        print(line)
        if "erf" in row:
            print(f"{'  + heatmap (erf)':<26}{row['erf']['median']:>8}{row['erf']['p95']:>8}")
        if total["median"] > TARGET_MS:
            missed.append(key)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument(
        "--compare",
        metavar="URL",
        help="another cnnviz server (e.g. the previous commit under `cnnviz serve`): its pages "
        "are timed too, interleaved with these, and the table gives before / after",
    )
    args = parser.parse_args()
    base, server, thread = start_server()
    bases = {"this": base} | ({"before": args.compare.rstrip("/")} if args.compare else {})
    load_before = os.getloadavg()[0]
    results: dict[str, dict] = {label: {} for label in bases}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name in args.pages.split(","):
                for label, rows in measure_page(browser, bases, name, args.repeats).items():
                    results[label].update(rows)
            browser.close()
    finally:
        stop_server(server, thread)
    load = f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"
    print(json.dumps({"load_average": load, **results}, indent=1, ensure_ascii=False))
    missed = print_table(results["this"], results.get("before"))
    print(f"load average {load}; target median ≤ {TARGET_MS:.0f} ms:",
          "ok" if not missed else f"MISSED by {', '.join(missed)}")  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
