"""Frame rate of the convolution explorer while it plays, in headless Chromium.

Serves the app on a free loopback port, opens /conv with a 32×32 input (padding 1: a 34×34
padded grid and a 32×32 output, 1 024 steps), sets the player to 60 steps per second, so every
frame draws a new step (window, output cell, written-out arithmetic) and records the
requestAnimationFrame deltas for a few seconds of playing. Also reads Chromium's own counters
(script, style, layout time) over the same span to show where a frame's time goes.

Target (issue 2): median ≥ 55 fps. Exit status 1 when it is missed.

    .venv/bin/python benchmarks/conv_fps.py [--seconds 5] [--size 32] [--channels 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]
from live import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server  # noqa: E402

TARGET_FPS = 55.0

# Collects rAF deltas in the page (runs in Playwright's utility call, not as a page script).
RECORD = """(seconds) => new Promise((resolve) => {
  const deltas = [];
  let last = null;
  const end = performance.now() + seconds * 1000;
  function frame(now) {
    if (last !== null) deltas.push(now - last);
    last = now;
    if (now < end) requestAnimationFrame(frame); else resolve(deltas);
  }
  requestAnimationFrame(frame);
})"""


def metrics(cdp) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure(base: str, seconds: float, size: int, channels: int) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        query = (
            f"lang=en&input=random&size={size}&channels={channels}&kernel=3&padding=1"
            "&speed=60&step=0"
        )
        page.goto(f"{base}/conv?{query}")
        page.wait_for_selector("body[data-ready=true]")
        steps = int(page.get_attribute("#stage", "data-steps"))
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        # Baseline, same page and run: the frame clock of the page standing still, which shows
        # what the (shared) machine itself allows.
        idle = page.evaluate(RECORD, seconds)
        before = metrics(cdp)
        page.click(".player-toggle")
        deltas = page.evaluate(RECORD, seconds)
        after = metrics(cdp)
        position = page.inner_text(".player-position")
        playing = page.get_attribute(".player-toggle", "aria-pressed") == "true"
        browser.close()
    frames = len(deltas)
    per_frame = {
        key: (after[key] - before[key]) * 1000 / frames
        for key in (
            "ScriptDuration",
            "RecalcStyleDuration",
            "LayoutDuration",
            "TaskDuration",
            "ThreadTime",
        )
        if key in after
    }
    median = statistics.median(deltas)
    ordered = sorted(deltas)
    return {
        "input": f"{channels}×{size}×{size}",
        "steps_in_trace": steps,
        "frames": frames,
        "median_frame_ms": round(median, 2),
        "median_fps": round(1000 / median, 1),
        "p95_frame_ms": round(ordered[int(0.95 * (frames - 1))], 2),
        "frames_over_20ms": f"{sum(d > 20 for d in deltas)} of {frames}",
        "position_after": position,
        "still_playing": playing,
        "per_frame_ms": {k: round(v, 3) for k, v in per_frame.items()},
        "idle_median_fps": round(1000 / statistics.median(idle), 1),
        "idle_frames_over_20ms": f"{sum(d > 20 for d in idle)} of {len(idle)}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    args = parser.parse_args()
    base, server, thread = start_server()
    try:
        result = measure(base, args.seconds, args.size, args.channels)
    finally:
        stop_server(server, thread)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    ok = result["median_fps"] >= TARGET_FPS
    print(f"median {result['median_fps']} fps (target ≥ {TARGET_FPS}): {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
