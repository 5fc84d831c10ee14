// The convolution stage: input, kernel and output grids for one trace, and what one step looks
// like on them. conv2d: the window on the input, its output cell filling in, cells computed so far
// shown, the rest pending. conv_transpose2d: one input cell scattering value × kernel onto the
// output, which accumulates step by step. All drawing goes through grid.js.

import { t } from "./i18n.js";
import { addGridFigure } from "./grid.js";
import { rangeOf } from "./colormap.js";
import {
  channelName as captionOf, highlightChannel, revealOutputs, stepAt, stepsExtent, widestNumber, windowCells,
} from "./trace_grids.js";

const channelName = (c, channels) => captionOf("conv", c, channels);

/**
 * roots: { input, kernel, output, inputSub, kernelTitle, kernelSub, outputSub } elements.
 * handlers: onEdit(kind, at, value), onHoverStep(index | null), onPickStep(index).
 */
export function createConvView(roots, handlers) {
  let trace = null;
  let data = null;
  let inputs = [];
  let kernels = [];
  let biasGrid = null;
  let outputs = [];
  let filter = -1;
  let revealed = 0; // conv2d: output cells shown (the first `revealed` steps)
  let scatter = null; // conv_transpose2d: { channel, upto, sums: Map per channel }
  let extent = null; // conv_transpose2d: displayed output rows/cols around the cropped output

  const transposed = () => trace.kind === "conv_transpose2d";
  const outShape = () => [trace.output[0].length, trace.output[0][0].length];

  function clearRoots() {
    for (const grid of [...inputs, ...kernels, ...outputs, biasGrid]) grid?.destroy();
    for (const root of [roots.input, roots.kernel, roots.output]) root.replaceChildren();
    inputs = [];
    kernels = [];
    outputs = [];
    biasGrid = null;
    filter = -1;
  }

  function buildInputs() {
    const channels = data.input.length;
    const [height, width] = [data.input[0].length, data.input[0][0].length];
    const pad = transposed() ? { top: 0, bottom: 0, left: 0, right: 0 } : trace.padding;
    const source = transposed()
      ? (c) => (r, x) => data.input[c][r][x]
      : (c) => (r, x) => trace.padded_input[c][r + pad.top][x + pad.left];
    inputs = data.input.map((_, c) =>
      addGridFigure(roots.input, channelName(c, channels), {
        rows: height + pad.top + pad.bottom,
        cols: width + pad.left + pad.right,
        origin: [-pad.top, -pad.left],
        inner: { rows: height, cols: width },
        value: source(c),
        editable: true,
        onEdit: (r, x, value) => handlers.onEdit("i", [c, r, x], value),
        onHover: (r, x) => hoverInput(r, x),
      }),
    );
    const padText = pad.top + pad.bottom + pad.left + pad.right > 0
      ? t("conv.sub.padded", { top: pad.top, bottom: pad.bottom, left: pad.left, right: pad.right })
      : "";
    roots.inputSub.textContent = `${channels}×${height}×${width} ${padText}`.trim();
  }

  function buildOutputs() {
    const [height, width] = outShape();
    const values = [...trace.output.flat(2), ...trace.pre_activation.flat(2)];
    const range = rangeOf(values);
    const chars = widestNumber(values);
    // a scatter reaches past the output's border (the cropped taps): show those cells too
    extent = transposed() ? stepsExtent(trace.steps, [0, 0, height - 1, width - 1]) : null;
    outputs = trace.output.map((_, o) =>
      addGridFigure(roots.output, t("conv.feature_map", { n: o + 1 }), {
        rows: extent ? extent.rows : height,
        cols: extent ? extent.cols : width,
        origin: extent ? extent.origin : [0, 0],
        inner: { rows: height, cols: width },
        value: () => null,
        range,
        chars,
        onHover: (r, x) => hoverOutput(o, r, x),
        onActivate: (r, x) => pickOutput(o, r, x),
      }),
    );
    roots.outputSub.textContent = `${trace.output.length}×${height}×${width}`;
  }

  function showFilter(o) {
    if (o === filter) return;
    filter = o;
    for (const grid of kernels) grid.destroy();
    roots.kernel.replaceChildren();
    const weights = data.weights[o];
    const size = weights[0].length;
    const range = rangeOf(data.weights.flat(3));
    const reads = trace.steps.find((s) => s.out_channel === o)?.in_channels ?? weights.map((_, i) => i);
    kernels = weights.map((kernel, ci) =>
      addGridFigure(roots.kernel, channelName(reads[ci], data.input.length), {
        rows: size,
        cols: size,
        value: (r, x) => kernel[r][x],
        range,
        editable: true,
        onEdit: (r, x, value) => handlers.onEdit("k", [o, ci, r, x], value),
      }),
    );
    biasGrid = null;
    if (data.bias) {
      biasGrid = addGridFigure(roots.kernel, t("conv.bias_value"), {
        rows: 1,
        cols: 1,
        value: () => data.bias[o],
        editable: true,
        onEdit: (_r, _x, value) => handlers.onEdit("b", [o], value),
      });
      biasGrid.figure.classList.add("is-bias");
    }
    roots.kernelTitle.textContent = t("conv.filter_of", { n: o + 1, count: data.weights.length });
    roots.kernelSub.textContent = `${weights.length}×${size}×${size}`;
  }

  // --- conv2d ---------------------------------------------------------------------------------
  function stepConv(index) {
    const step = trace.steps[index];
    const cells = windowCells(step.rows, step.cols);
    inputs.forEach((grid, c) => {
      const reads = step.in_channels.includes(c);
      grid.highlight("window", reads ? cells : []);
      grid.figure.classList.toggle("is-idle", !reads);
    });
    revealed = revealOutputs(outputs, trace.output, revealed, index + 1);
    highlightChannel(outputs, "current", step.out_channel, [[step.y, step.x]]);
    const padded = [];
    step.padded.forEach((row, i) => row.forEach((isPad, j) => isPad && padded.push([i, j])));
    for (const grid of kernels) grid.highlight("muted", padded);
  }

  // --- conv_transpose2d -----------------------------------------------------------------------
  function channelSteps(o) {
    const perChannel = trace.steps.length / trace.output.length;
    return [o * perChannel, (o + 1) * perChannel - 1];
  }

  function paintPartial(o, cells) {
    const sums = scatter.sums[o];
    for (const [r, c] of cells) {
      const key = `${r},${c}`;
      outputs[o].setValue(r, c, sums.has(key) ? sums.get(key) + trace.bias[o] : null);
    }
  }

  function allCells(o) {
    const grid = outputs[o];
    const cells = [];
    for (let i = 0; i < grid.rows; i++) for (let j = 0; j < grid.cols; j++) cells.push([grid.origin[0] + i, grid.origin[1] + j]);
    return cells;
  }

  function addScatter(o, index) {
    const step = trace.steps[index];
    const sums = scatter.sums[o];
    const touched = [];
    step.rows.forEach((r, i) =>
      step.cols.forEach((c, j) => {
        const key = `${r},${c}`;
        sums.set(key, (sums.get(key) ?? 0) + step.scatter[i][j]);
        touched.push([r, c]);
      }),
    );
    return touched;
  }

  function paintFinal(o) {
    const [height, width] = outShape();
    for (const [r, c] of allCells(o)) {
      const inside = r >= 0 && c >= 0 && r < height && c < width;
      outputs[o].setValue(r, c, inside ? trace.output[o][r][c] : scatter.sums[o].get(`${r},${c}`) ?? null);
    }
  }

  function stepTransposed(index) {
    const step = trace.steps[index];
    const o = step.out_channel;
    const end = channelSteps(o)[1];
    if (!scatter) scatter = { channel: -1, upto: -1, sums: trace.output.map(() => new Map()) };
    if (scatter.channel !== o || index < scatter.upto) {
      // A jump: rebuild every channel's picture (finished, this one so far, not started).
      scatter.sums = trace.output.map(() => new Map());
      for (let other = 0; other < trace.output.length; other++) {
        const [s, e] = channelSteps(other);
        const last = other < o ? e : other === o ? index : s - 1;
        for (let i = s; i <= last; i++) addScatter(other, i);
        if (other < o) paintFinal(other);
        else paintPartial(other, allCells(other));
      }
    } else {
      for (let i = scatter.upto + 1; i <= index; i++) paintPartial(o, addScatter(o, i));
    }
    scatter.channel = o;
    scatter.upto = index;
    if (index === end) paintFinal(o);
    inputs.forEach((grid, c) => {
      const reads = step.in_channels.includes(c);
      grid.highlight("current", reads ? [[step.y, step.x]] : []);
      grid.figure.classList.toggle("is-idle", !reads);
    });
    highlightChannel(outputs, "window", o, windowCells(step.rows, step.cols));
  }

  // --- hover and picking ----------------------------------------------------------------------
  // conv2d steps go by output cell, conv_transpose2d steps by input cell (of the filter shown)
  function hoverOutput(o, r, x) {
    handlers.onHoverStep(transposed() ? null : stepAt(o, r, x, ...outShape()));
  }

  function hoverInput(r, x) {
    const [height, width] = [data.input[0].length, data.input[0][0].length];
    handlers.onHoverStep(!transposed() || filter < 0 ? null : stepAt(filter, r, x, height, width));
  }

  function pickOutput(o, r, x) {
    const index = transposed() ? null : stepAt(o, r, x, ...outShape());
    if (index !== null) handlers.onPickStep(index);
  }

  return {
    /** A new trace (and the numbers it was made from: input, weights, bias). */
    show(newTrace, newData) {
      clearRoots();
      trace = newTrace;
      data = newData;
      revealed = 0;
      scatter = null;
      roots.input.closest(".stage")?.classList.toggle("is-transposed", transposed());
      buildInputs();
      buildOutputs();
    },
    /** Draw step `index` of the trace. */
    step(index) {
      if (!trace || trace.steps.length === 0) return;
      const step = trace.steps[index];
      showFilter(step.out_channel);
      if (transposed()) stepTransposed(index);
      else stepConv(index);
    },
    /** Preview another step's window (hover) without moving the player; null ends it. */
    preview(index) {
      if (!trace) return;
      const step = index === null ? null : trace.steps[index];
      const cells = step ? windowCells(step.rows, step.cols) : [];
      if (transposed()) {
        highlightChannel(outputs, "hover", step?.out_channel, cells);
        return;
      }
      inputs.forEach((grid, c) => grid.highlight("hover", step && step.in_channels.includes(c) ? cells : []));
      highlightChannel(outputs, "hover", step?.out_channel, step ? [[step.y, step.x]] : []);
    },
    /** Show a just-edited number before the new trace arrives. */
    setInputValue(c, r, x, value) {
      inputs[c]?.setValue(r, x, value);
    },
    get trace() {
      return trace;
    },
  };
}
