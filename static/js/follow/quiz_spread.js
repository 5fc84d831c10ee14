// The spread of a class's answers to a quiz question, as horizontal bars (one SVG, scaled to its
// box: a projector and a 360 px phone draw the same chart). Numbers: one bar per distinct answer
// while there are few, else equal-width ranges; choices: one bar per option. After the reveal
// the bar holding the right answer (as the server checked it) is marked.

import { formatExact } from "../format.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_DISTINCT = 8; // more distinct numbers than this are put into ranges
const RANGES = 8;
const WIDTH = 600;
const ROW = 52;
const LABEL_WIDTH = 200;
const COUNT_WIDTH = 56;
function el(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** Bars `{label, count, correct}` for `spread` ([value, count, right] or [index, count, right]
 * triples from the server, which checks answers as the lesson does); `reveal` marks the right
 * one. */
export function barsOf(kind, spread, { options = [], reveal = false } = {}) {
  if (kind === "choice" || spread.length <= MAX_DISTINCT) {
    return spread.map(([value, count, right]) => ({
      label: kind === "choice" ? (options[value] ?? String(value + 1)) : formatExact(value),
      count,
      correct: reveal && right === 1,
    }));
  }
  const low = spread[0][0];
  const high = spread[spread.length - 1][0];
  const width = (high - low) / RANGES;
  const bars = Array.from({ length: RANGES }, (_, i) => ({
    label: `${formatExact(low + i * width)} – ${formatExact(i === RANGES - 1 ? high : low + (i + 1) * width)}`,
    count: 0,
    correct: false,
  }));
  for (const [value, count, right] of spread) {
    const bar = bars[Math.min(RANGES - 1, Math.floor((value - low) / width))];
    bar.count += count;
    bar.correct ||= reveal && right === 1;
  }
  return bars;
}

/** Draw `bars` into `container` (replacing what was there), with an accessible summary. */
export function drawSpread(container, bars, summary) {
  const total = Math.max(1, ...bars.map((bar) => bar.count));
  const height = Math.max(1, bars.length) * ROW;
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": summary, class: "quiz-spread-chart" });
  const span = WIDTH - LABEL_WIDTH - COUNT_WIDTH;
  bars.forEach((bar, i) => {
    const y = i * ROW;
    const row = el("g", { class: `quiz-bar${bar.correct ? " is-correct" : ""}`, "data-count": bar.count });
    row.append(
      el("text", { x: LABEL_WIDTH - 10, y: y + ROW / 2, class: "quiz-bar-label", "text-anchor": "end", "dominant-baseline": "middle" }, bar.label),
      el("rect", { x: LABEL_WIDTH, y: y + 6, height: ROW - 12, width: Math.max(bar.count ? 3 : 0, (span * bar.count) / total), rx: 3, class: "quiz-bar-rect" }),
      el("text", { x: WIDTH - 4, y: y + ROW / 2, class: "quiz-bar-count", "text-anchor": "end", "dominant-baseline": "middle" }, String(bar.count)),
    );
    svg.append(row);
  });
  container.replaceChildren(svg);
}
