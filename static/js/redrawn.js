// A performance mark once a redraw is on screen: benchmarks/explorer_latency.py times each
// control from its input event to this mark. requestAnimationFrame runs just before the frame
// is painted; the task queued from it runs once that paint is done.

let count = 0;

/** Mark `cnnviz:redrawn` (detail: `what`) after the next paint; tests may wait on the count. */
export function markRedrawn(what) {
  requestAnimationFrame(() => {
    setTimeout(() => {
      count += 1;
      performance.mark("cnnviz:redrawn", { detail: what });
      document.body.dataset.redrawn = String(count);
    }, 0);
  });
}
