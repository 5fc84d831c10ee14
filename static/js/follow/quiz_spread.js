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
const STACK_AFTER_CHARS = 11; // a longer label (a choice's text) goes above its bar
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

/** Draw `bars` into `container` (replacing what was there), with an accessible summary. Short
 * labels (numbers) stand left of their bars; long ones (a choice's text) above them. */
export function drawSpread(container, bars, summary) {
  const total = Math.max(1, ...bars.map((bar) => bar.count));
  const stacked = bars.some((bar) => bar.label.length > STACK_AFTER_CHARS);
  const row = stacked ? 2 * ROW - 8 : ROW;
  const left = stacked ? 0 : LABEL_WIDTH;
  const height = Math.max(1, bars.length) * row;
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": summary, class: "quiz-spread-chart" });
  const span = WIDTH - left - COUNT_WIDTH;
  bars.forEach((bar, i) => {
    const top = i * row;
    const barTop = stacked ? top + ROW - 12 : top;
    const group = el("g", { class: `quiz-bar${bar.correct ? " is-correct" : ""}`, "data-count": bar.count });
    const label = stacked
      ? el("text", { x: 0, y: top + ROW / 2 - 6, class: "quiz-bar-label", "dominant-baseline": "middle" }, bar.label)
      : el("text", { x: LABEL_WIDTH - 10, y: top + ROW / 2, class: "quiz-bar-label", "text-anchor": "end", "dominant-baseline": "middle" }, bar.label);
    group.append(
      label,
      el("rect", { x: left, y: barTop + 6, height: ROW - 12, width: Math.max(bar.count ? 3 : 0, (span * bar.count) / total), rx: 3, class: "quiz-bar-rect" }),
      el("text", { x: WIDTH - 4, y: barTop + ROW / 2, class: "quiz-bar-count", "text-anchor": "end", "dominant-baseline": "middle" }, String(bar.count)),
    );
    svg.append(group);
  });
  container.replaceChildren(svg);
}
