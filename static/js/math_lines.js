// The written-out arithmetic the explorers' step writers share (kernel_math.js, pool_math.js;
// CNN Explainer's KernelMathView): a title naming the step, with a badge while it is only a
// hovered preview, then lines of a label and terms, numbers written so that a sum reads one way.

import { formatExact } from "./format.js";

/** A number as a term of a sum or product: negatives in parentheses; a max's padding as −∞. */
export function num(value) {
  if (value === null || value === -Infinity) return "−∞";
  const text = formatExact(value);
  return value < 0 ? `(${text})` : text;
}

export function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A line of arithmetic: its label, then `terms` to fill. */
export function mathLine(label, className = "math-line") {
  const row = node("p", className);
  const terms = node("span", "math-terms");
  row.append(node("span", "math-label", label), terms);
  return { row, terms };
}

/** Append the term nodes `parts` to `terms` with the operator `separator` between each two. */
export function appendJoined(terms, parts, separator) {
  parts.forEach((part, k) => {
    if (k > 0) terms.append(node("span", "math-op", separator));
    terms.append(part);
  });
}

/** Write one step into `root`: the title `heading` (with `badge` while `preview`), then `lines`. */
export function writeMath(root, heading, badge, lines, preview) {
  const title = node("p", "math-title", heading);
  if (preview) title.append(node("span", "badge", badge));
  root.replaceChildren(title, ...lines);
  root.classList.toggle("is-preview", preview);
}
