// A unit's arithmetic written out from GET /api/features/{id}/unit (one writer per kind, sharing
// math_lines.js with the /conv and /pool explorers). Every number that came from an earlier
// unit is a button: activating it walks back to that unit (onWalk(source, channel, y, x)).

import { t } from "../i18n.js";
import { formatExact } from "../format.js";
import { appendJoined, mathLine, node, num } from "../math_lines.js";

const INPUT = "_input";
const FUNCTIONS = new Set(["relu", "relu6", "tanh", "sigmoid", "leakyrelu", "gelu", "silu", "elu"]);

/** A number that is a unit of an earlier layer: a button that opens that unit. */
function walkTerm(text, source, cell, onWalk) {
  if (source === INPUT) { // a pixel of the picture: where the walk ends
    const pixel = node("span", "term is-pixel", text);
    pixel.title = t("unit.pixel", { channel: cell[0], row: cell[1], col: cell[2] });
    return pixel;
  }
  const button = node("button", "term unit-walk", text);
  button.type = "button";
  button.dataset.source = source;
  button.title = t("unit.walk", { layer: sourceName(source), channel: cell[0], row: cell[1], col: cell[2] });
  button.addEventListener("click", () => onWalk(source, ...cell));
  return button;
}

export function sourceName(source) {
  return source === INPUT ? t("unit.pixels") : source;
}

function totalLine(parts, total, label = t("unit.total")) {
  const line = mathLine(label, "math-line math-total");
  line.terms.textContent = `${parts.length > 1 ? `${parts.join(" + ")} = ` : ""}${formatExact(total)}`;
  return line.row;
}

function convLines(unit, onWalk) {
  const d = unit.detail;
  const lines = d.in_channels.map((c, k) => {
    const { row, terms } = mathLine(t("unit.channel_of", { channel: c, layer: sourceName(d.source) }));
    const products = d.rows.flatMap((r, i) => d.cols.map((q, j) => {
      const text = `${num(d.window[k][i][j])}×${num(d.kernel[k][i][j])}`;
      if (d.padded[i][j]) return node("span", "term is-padded", text);
      return walkTerm(text, d.source, [c, r, q], onWalk);
    }));
    appendJoined(terms, products, "+");
    terms.append(node("span", "math-op", "="), node("strong", "math-sum", formatExact(d.channel_sums[k])));
    return row;
  });
  const parts = d.channel_sums.map((s) => num(s));
  if (d.rest_channels > 0) parts.push(`${t("unit.rest_channels", { count: d.rest_channels })} ${num(d.rest_sum)}`);
  if (d.bias !== null) parts.push(`${t("unit.bias")} ${num(d.bias)}`);
  return [...lines, totalLine(parts, unit.total)];
}

function elementLine(unit, text, onWalk) {
  const d = unit.detail;
  const cell = "channel" in d ? [d.channel, d.y, d.x] : [unit.channel, unit.y, unit.x];
  const line = mathLine(t(`unit.kind.${unit.kind}`));
  line.terms.append(walkTerm(formatExact(d.input), d.source, cell, onWalk), node("span", "math-op", text));
  return line;
}

function batchNormLines(unit, onWalk) {
  const d = unit.detail;
  const line = elementLine(unit, "", onWalk);
  line.terms.lastChild.remove();
  const input = line.terms.firstChild;
  line.terms.replaceChildren(
    "(", input, ` − ${num(d.mean)}) / √(${num(d.var)} + ${d.eps}) = ${formatExact(d.normalised)}`,
  );
  const scale = mathLine(t("unit.bn_scale"), "math-line math-total");
  scale.terms.textContent = `${formatExact(d.normalised)} × γ ${num(d.gamma)} + β ${num(d.beta)} = ${formatExact(unit.total)}`;
  return [line.row, scale.row];
}

function activationLines(unit, onWalk) {
  const d = unit.detail;
  const line = mathLine(t("unit.kind.activation"));
  const name = FUNCTIONS.has(d.function) ? t(`unit.function.${d.function}`) : d.function;
  line.terms.append(`${name}(`, walkTerm(formatExact(d.input), d.source,
    [unit.channel, unit.y, unit.x], onWalk), `) = ${formatExact(unit.total)}`);
  return [line.row];
}

function copyLines(unit, onWalk) {
  const d = unit.detail;
  const line = mathLine(t(`unit.kind.${unit.kind}`, { branch: d.branch + 1, offset: d.offset }));
  line.terms.append(walkTerm(formatExact(d.input), d.source, [d.channel, d.y, d.x], onWalk),
    ` ← ${sourceName(d.source)} (${d.channel}, ${d.y}, ${d.x})`);
  return [line.row];
}

function poolLines(unit, onWalk) {
  const d = unit.detail;
  const line = mathLine(t(d.op === "max" ? "unit.kind.max_pool" : "unit.kind.avg_pool"));
  const cells = d.rows.flatMap((r, i) => d.cols.map((q, j) => {
    if (!d.inside[i][j]) return node("span", "term is-padded", d.op === "max" ? "−∞" : "0");
    const term = walkTerm(num(d.window[i][j]), d.source, [unit.channel, r, q], onWalk);
    if (d.winner && d.winner[0] === i && d.winner[1] === j) term.classList.add("is-winner");
    return term;
  }));
  if (d.op === "max") {
    line.terms.append("max(");
    appendJoined(line.terms, cells, ",");
    line.terms.append(`) = ${formatExact(unit.total)}`);
  } else {
    line.terms.append("(");
    appendJoined(line.terms, cells, "+");
    line.terms.append(`) / ${d.divisor} = ${formatExact(d.window_sum)} / ${d.divisor} = ${formatExact(unit.total)}`);
  }
  return [line.row];
}

function addLines(unit, onWalk) {
  const d = unit.detail;
  const lines = d.operands.map((op) => {
    const line = mathLine(t(`unit.role.${op.role}`));
    line.terms.append(op.role === "constant" ? formatExact(op.value)
      : walkTerm(formatExact(op.value), op.source, [unit.channel, unit.y, unit.x], onWalk),
    ` ← ${op.source ? sourceName(op.source) : ""}`);
    return line.row;
  });
  return [...lines, totalLine(d.operands.map((op) => num(op.value)), unit.total)];
}

function termsLines(unit, onWalk, label, cellOf) {
  const d = unit.detail;
  const terms = d.terms;
  const line = mathLine(label);
  const parts = terms.products.map((p, k) => walkTerm(
    `${num(terms.inputs[k])}×${num(terms.weights[k])}`, d.source, cellOf(k), onWalk));
  appendJoined(line.terms, parts, "+");
  const sums = terms.products.map((p) => num(p));
  if (terms.rest_terms > 0) sums.push(`${t("unit.rest_terms", { count: terms.rest_terms })} ${num(terms.rest_sum)}`);
  if (terms.bias !== null) sums.push(`${t("unit.bias")} ${num(terms.bias)}`);
  const lines = [line.row, totalLine(sums, unit.total)];
  if (d.softmax) {
    const s = d.softmax;
    const soft = mathLine(t("unit.softmax"), "math-line math-activation");
    soft.terms.textContent = t("unit.softmax_terms", {
      logit: formatExact(s.logit), max: formatExact(s.max_logit), exp: formatExact(s.exp),
      sum: formatExact(s.sum_exp), classes: s.classes, probability: formatExact(s.probability),
    });
    lines.push(soft.row);
  }
  return lines;
}

/** The lines that write out `unit` (an API answer); onWalk opens an earlier unit. */
export function unitLines(unit, onWalk) {
  switch (unit.kind) {
    case "conv": return convLines(unit, onWalk);
    case "batch_norm": return batchNormLines(unit, onWalk);
    case "activation": return activationLines(unit, onWalk);
    case "max_pool": case "avg_pool": return poolLines(unit, onWalk);
    case "add": return addLines(unit, onWalk);
    case "linear": return termsLines(unit, onWalk, t("unit.kind.linear"), (k) => [unit.detail.indices[k], 0, 0]);
    case "conv_transpose": return termsLines(unit, onWalk, t("unit.kind.conv_transpose"),
      (k) => [unit.detail.channels[k], unit.detail.rows[k], unit.detail.cols[k]]);
    default: return copyLines(unit, onWalk); // identity, flatten, concat
  }
}
