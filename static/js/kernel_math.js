// Writes one step's arithmetic out with the actual numbers (CNN Explainer's KernelMathView):
// conv2d: per input channel the window × kernel products and their sum, then the channels added,
// the bias, the activation; conv_transpose2d: the input cell's value times each kernel tap, added
// onto its output cell.

import { t } from "./i18n.js";
import { formatExact } from "./format.js";
import { appendJoined, mathLine, node, num, writeMath } from "./math_lines.js";
import { channelName } from "./trace_grids.js";

/** More products than 3 channels × 3×3 make a step's arithmetic dense. */
const DENSE_TERMS = 27;

const channelLabel = (c, channels) => channelName("conv", c, channels);

function activationLine(name, pre, value) {
  if (!name || name === "none") return null;
  return node("p", "math-line math-activation", `${t(`activation.${name}`)}(${formatExact(pre)}) = ${formatExact(value)}`);
}

function convSteps(step, data, trace) {
  const pad = trace.padding;
  const lines = [];
  const channels = data.input.length;
  step.in_channels.forEach((c, ci) => {
    const { row, terms } = mathLine(channelLabel(c, channels));
    const products = step.rows.flatMap((r, i) =>
      step.cols.map((x, j) => {
        const value = trace.padded_input[c][r + pad.top][x + pad.left];
        const weight = data.weights[step.out_channel][ci][i][j];
        const term = node("span", step.padded[i][j] ? "term is-padded" : "term", `${num(value)}×${num(weight)}`);
        term.title = t("conv.math.term", { row: r, col: x, product: formatExact(step.products[ci][i][j]) });
        return term;
      }),
    );
    appendJoined(terms, products, "+");
    terms.append(node("span", "math-op", "="), node("strong", "math-sum", formatExact(step.channel_sums[ci])));
    lines.push(row);
  });
  const total = mathLine(t("conv.math.total"), "math-line math-total");
  const parts = step.channel_sums.map((sum) => num(sum));
  if (data.bias) parts.push(`${t("conv.math.bias")} ${num(step.bias)}`);
  const showSum = parts.length > 1;
  total.terms.textContent = `${showSum ? `${parts.join(" + ")} = ` : ""}${formatExact(step.pre_activation)}`;
  lines.push(total.row);
  const activation = activationLine(data.activation, step.pre_activation, step.value);
  if (activation) lines.push(activation);
  return lines;
}

function transposedSteps(step, data, trace, isLast) {
  const channels = data.input.length;
  const lines = [];
  const values = mathLine(t("conv.math.input_value"));
  values.terms.textContent =
    step.in_channels.map((c, ci) => `${channelLabel(c, channels)} = ${formatExact(step.inputs[ci])}`).join(", ");
  lines.push(values.row);
  const taps = node("div", "math-taps");
  step.rows.forEach((r, i) =>
    step.cols.forEach((x, j) => {
      const products = step.in_channels.map((_, ci) =>
        `${num(step.inputs[ci])}×${num(data.weights[step.out_channel][ci][i][j])}`);
      const text = `(${r}, ${x}) += ${products.join(" + ")} = ${formatExact(step.scatter[i][j])}`;
      const tap = node("span", step.cropped[i][j] ? "term is-padded" : "term", text);
      if (step.cropped[i][j]) tap.title = t("conv.math.cropped");
      taps.append(tap);
    }),
  );
  lines.push(taps);
  if (isLast) {
    const done = mathLine(t("conv.math.total"), "math-line math-total");
    done.terms.textContent = data.bias
      ? t("conv.math.transposed_bias", { bias: formatExact(trace.bias[step.out_channel]) })
      : t("conv.math.transposed_done");
    lines.push(done.row);
    if (data.activation && data.activation !== "none") {
      lines.push(node("p", "math-line math-activation", t("conv.math.transposed_activation", {
        activation: t(`activation.${data.activation}`) })));
    }
  }
  return lines;
}

/**
 * Render step `index` of `trace` into `root`. data: { input, weights, bias, activation };
 * preview: true while the user hovers another cell (the heading says so).
 */
export function renderKernelMath(root, trace, index, data, preview = false) {
  const step = trace.steps[index];
  const transposed = trace.kind === "conv_transpose2d";
  const heading = transposed
    ? t("conv.math.scatter_heading", { n: step.out_channel + 1, row: step.y, col: step.x })
    : t("conv.math.heading_cell", { n: step.out_channel + 1, row: step.y, col: step.x });
  const perChannel = trace.steps.length / trace.output.length;
  const isLast = (index + 1) % perChannel === 0;
  const lines = transposed ? transposedSteps(step, data, trace, isLast) : convSteps(step, data, trace);
  writeMath(root, heading, t("conv.math.preview"), lines, preview);
  // many products (e.g. 3 channels × 5×5): written smaller on a short screen so the total stays
  // in view beside the grids (explorer.css)
  const terms = transposed ? 0 : step.in_channels.length * step.rows.length * step.cols.length;
  root.classList.toggle("is-dense", terms > DENSE_TERMS);
}
