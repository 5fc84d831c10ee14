// A drawing pad as the /features picture: the drawing goes to the network while the stroke is
// still being drawn (pad.js, the same pad /teach uses). Throttled by the answer itself and
// latest-wins: one drawing in flight at a time; strokes made meanwhile only mark the drawing
// changed, and when the answer is on screen the drawing as it is then goes next — so requests
// never pile up and what is shown is at most one round trip behind the pen. Each shown update
// sets the performance mark "cnnviz:draw" (detail: {update, stroke} in ms: from sending the
// drawing, and from the oldest stroke it shows, to its maps and prediction on screen; midStroke:
// it was sent with the pen down).

import { DrawingPad } from "../datasets/pad.js";

const ONE_COLUMN = window.matchMedia("(max-width: 760px)"); // sidebar_layout.css's one column

/**
 * @param {{open: HTMLButtonElement, panel: HTMLElement, canvas: HTMLCanvasElement,
 *          clear: HTMLButtonElement}} nodes
 * @param {{onOpen(file: File): Promise, send(file: File, midStroke: boolean): Promise}} handlers
 *   `onOpen` switches the page to the drawing (the first, blank one); `send` resolves once
 *   the maps and prediction of `file` are shown (`midStroke`: the pen is still down). When
 *   the pen lifts the drawing is sent once more as finished (the server has it already).
 */
export function bindDrawing(nodes, { onOpen, send }) {
  let inFlight = false;
  let changedAt = null; // when the oldest stroke not yet sent was drawn (null: nothing new)
  let penDown = false;
  // Before the pad's own listener: the stroke's first point is sent with the pen down.
  nodes.canvas.addEventListener("pointerdown", () => (penDown = true));
  const pad = new DrawingPad(nodes.canvas, { width: 14, onStroke: changed });

  async function picture() {
    return new File([await pad.toBlob()], "drawing.png", { type: "image/png" });
  }

  function changed() {
    changedAt ??= performance.now();
    flush();
  }

  for (const name of ["pointerup", "pointercancel"]) {
    nodes.canvas.addEventListener(name, () => {
      penDown = false;
      changed(); // the finished drawing, with its steps and filters
    });
  }

  /** Send the drawing through `through` (onOpen or send); then the next, if it changed. */
  async function update(through, stroke) {
    inFlight = true;
    nodes.panel.dataset.busy = "true";
    const started = performance.now();
    const midStroke = penDown;
    try {
      await through(await picture(), midStroke);
      const now = performance.now();
      performance.mark("cnnviz:draw",
        { detail: { update: now - started, stroke: now - stroke, midStroke } });
      nodes.panel.dataset.updates = String(Number(nodes.panel.dataset.updates ?? 0) + 1);
    } finally {
      inFlight = false;
      nodes.panel.dataset.busy = "false";
      flush(); // the drawing as it is now, if it changed meanwhile
    }
  }

  function flush() {
    if (inFlight || changedAt === null) return;
    const stroke = changedAt;
    changedAt = null;
    update(send, stroke);
  }

  nodes.open.addEventListener("click", () => {
    const opening = nodes.panel.hidden;
    nodes.panel.hidden = !opening;
    nodes.open.setAttribute("aria-expanded", String(opening));
    // a phone (one column, features.css): the pad comes to the top of the screen, the layers'
    // maps and the prediction just below it
    if (opening && ONE_COLUMN.matches) nodes.panel.scrollIntoView({ block: "start" });
    if (opening && !inFlight) update(onOpen, performance.now());
  });
  nodes.clear.addEventListener("click", () => {
    pad.clear();
    changed();
  });
}
