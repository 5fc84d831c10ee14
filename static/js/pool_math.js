// Writes one pooling step out with its actual numbers: max(…) with the winner marked, the sum
// over the divisor for the average, √(Σ x²) for L2; with the backward view, where the output's
// upstream gradient goes (the max only, 1/divisor each, or x/‖x‖ each).

import { t } from "./i18n.js";
import { formatExact } from "./format.js";
import { appendJoined, mathLine as line, node, num, writeMath } from "./math_lines.js";

/** Each window cell as {r, c, value, padded, weight, chosen}, row-major. */
function cellsOf(step) {
  const cells = [];
  step.rows.forEach((r, i) =>
    step.cols.forEach((c, j) => {
      cells.push({
        r, c, i, j,
        value: step.values[i][j],
        padded: step.padded[i][j],
        weight: step.weights ? step.weights[i][j] : null,
        chosen: Boolean(step.chosen) && step.chosen[0] === r && step.chosen[1] === c,
      });
    }),
  );
  return cells;
}

function joined(terms, cells, text, separator) {
  const parts = cells.map((cell) => {
    let className = "term";
    if (cell.padded) className += " is-padded";
    if (cell.chosen) className += " is-chosen";
    if (cell.weight === 0) className += " is-unused";
    const term = node("span", className, text(cell));
    term.title = t("pool.math.at", { row: cell.r, col: cell.c });
    return term;
  });
  appendJoined(terms, parts, separator);
}

function forward(step, kind) {
  const cells = cellsOf(step);
  const { row, terms } = line(t(`pool.kind.${kind}`), "math-line math-total");
  if (kind === "max") {
    terms.append(node("span", "math-op", "max("));
    joined(terms, cells, (cell) => num(cell.value), ",");
    terms.append(node("span", "math-op", ")"));
  } else if (kind === "l2") {
    terms.append(node("span", "math-op", "√("));
    joined(terms, cells, (cell) => `${num(cell.value)}²`, "+");
    terms.append(node("span", "math-op", ")"), node("span", "math-op", "="),
      node("span", "term", `√${formatExact(step.value * step.value)}`));
  } else {
    terms.append(node("span", "math-op", "("));
    joined(terms, cells.filter((cell) => cell.weight !== 0), (cell) => num(cell.value), "+");
    terms.append(node("span", "math-op", `) / ${formatExact(step.divisor)}`));
  }
  terms.append(node("span", "math-op", "="), node("strong", "math-sum", formatExact(step.value)));
  return row;
}

function backward(step, routeOf, kind) {
  const cells = cellsOf(step).filter((cell) => !cell.padded && routeOf.amounts[cell.i][cell.j] !== 0);
  const rows = [];
  const head = line(t("pool.math.upstream"));
  head.terms.append(node("strong", "math-sum", formatExact(routeOf.grad)));
  rows.push(head.row);
  const share = line(t("pool.math.routes"));
  if (cells.length === 0) share.terms.append(node("span", "term", t("pool.math.no_route")));
  const how = (cell) => (kind === "max" ? "" : ` = ${num(routeOf.grad)}×${formatExact(cell.weight)}`);
  appendJoined(share.terms, cells.map((cell) =>
    node("span", "term", `(${cell.r}, ${cell.c}) ← ${formatExact(routeOf.amounts[cell.i][cell.j])}${how(cell)}`)), "·");
  rows.push(share.row);
  rows.push(node("p", "math-note hint", t(`pool.math.rule.${kind === "global_avg" ? "avg" : kind}`)));
  return rows;
}

/** Render step `index` of `trace` into `root`; `preview` marks a hovered, not played, step. */
export function renderPoolMath(root, trace, index, preview = false) {
  const step = trace.steps[index];
  if (!step) {
    root.replaceChildren();
    return;
  }
  const lines = [forward(step, trace.kind)];
  if (trace.backward) lines.push(...backward(step, trace.backward.routes[index], trace.kind));
  const heading = t("pool.math.cell", { channel: step.channel + 1, y: step.y, x: step.x });
  writeMath(root, heading, t("pool.math.hovered"), lines, preview);
}
