// The pooling stage: input, output and (backward view) upstream-gradient and input-gradient grids
// for one trace, and what one step looks like on them. Forward: the window on the input, the max
// (or the averaged cells) marked, the output cell filling in. Backward: the output cell's upstream
// gradient and where it goes in the input gradient, which accumulates step by step. All drawing
// goes through grid.js.

import { t } from "./i18n.js";
import { addGridFigure } from "./grid.js";
import { rangeOf } from "./colormap.js";
import { formatNumber } from "./format.js";
import {
  channelName as captionOf, highlightChannel, revealOutputs, stepAt, stepsExtent, widestNumber, windowCells,
} from "./trace_grids.js";

const formatCell = (value) => (value === -Infinity ? "−∞" : formatNumber(value));
const channelName = (c, channels) => captionOf("pool", c, channels);

/** Displayed rows/cols of the input: the padding and any ceil-mode overhang the windows reach. */
function inputExtent(trace, height, width) {
  const pad = trace.padding;
  return stepsExtent(trace.steps, [-pad.top, -pad.left, height + pad.bottom - 1, width + pad.right - 1]);
}

/**
 * roots: { input, output, gradOut, gradIn, inputSub, outputSub, gradOutSub, gradInSub } elements.
 * handlers: onEdit("i", at, value), onHoverStep(index | null), onPickStep(index).
 */
export function createPoolView(roots, handlers) {
  let trace = null;
  let data = null;
  let inputs = [];
  let outputs = [];
  let gradOuts = [];
  let gradIns = [];
  let revealed = 0;
  let routed = null; // backward: { upto, sums: per channel Float64Array(H·W) }

  const outShape = () => [trace.shape.height, trace.shape.width];
  const inShape = () => [data.input[0].length, data.input[0][0].length];

  function clear() {
    for (const grid of [...inputs, ...outputs, ...gradOuts, ...gradIns]) grid.destroy();
    for (const name of ["input", "output", "gradOut", "gradIn"]) roots[name].replaceChildren();
    inputs = [];
    outputs = [];
    gradOuts = [];
    gradIns = [];
  }

  function buildInputs() {
    const [height, width] = inShape();
    const channels = data.input.length;
    const pad = trace.padding;
    const padValue = trace.kind === "max" ? -Infinity : 0;
    const extent = inputExtent(trace, height, width);
    const inPadding = (r, c) => r >= -pad.top && c >= -pad.left && r < height + pad.bottom && c < width + pad.right;
    const range = rangeOf(data.input.flat(2));
    inputs = data.input.map((plane, c) =>
      addGridFigure(roots.input, channelName(c, channels), {
        ...extent,
        inner: { rows: height, cols: width },
        value: (r, x) => plane[r]?.[x] ?? (inPadding(r, x) ? padValue : null),
        range,
        format: formatCell,
        editable: true,
        onEdit: (r, x, value) => handlers.onEdit("i", [c, r, x], value),
      }),
    );
    const padText = pad.top + pad.left > 0
      ? t("pool.sub.padded", { pad: pad.top === pad.left ? pad.top : `${pad.top}, ${pad.left}`,
        value: trace.kind === "max" ? "−∞" : "0" })
      : "";
    roots.inputSub.textContent = `${channels}×${height}×${width} ${padText}`.trim();
  }

  function buildOutputs() {
    const [height, width] = outShape();
    const values = trace.output.flat(2);
    const range = rangeOf(values);
    const chars = widestNumber(values);
    outputs = trace.output.map((_, c) =>
      addGridFigure(roots.output, channelName(c, trace.output.length), {
        rows: height,
        cols: width,
        value: () => null,
        range,
        chars,
        onHover: (r, x) => hoverOutput(c, r, x),
        onActivate: (r, x) => pickOutput(c, r, x),
      }),
    );
    roots.outputSub.textContent = `${trace.shape.channels}×${height}×${width}`;
  }

  function buildBackward() {
    const backward = trace.backward;
    if (!backward) {
      roots.gradOutSub.textContent = "";
      roots.gradInSub.textContent = "";
      return;
    }
    const [height, width] = outShape();
    const [inHeight, inWidth] = inShape();
    const outRange = rangeOf(backward.grad_output.flat(2));
    gradOuts = backward.grad_output.map((plane, c) =>
      addGridFigure(roots.gradOut, channelName(c, backward.grad_output.length), {
        rows: height,
        cols: width,
        value: (r, x) => plane[r][x],
        range: outRange,
        onHover: (r, x) => hoverOutput(c, r, x),
        onActivate: (r, x) => pickOutput(c, r, x),
      }),
    );
    const inRange = rangeOf(backward.grad_input.flat(2));
    const chars = widestNumber(backward.grad_input.flat(2));
    gradIns = backward.grad_input.map((_, c) =>
      addGridFigure(roots.gradIn, channelName(c, backward.grad_input.length), {
        rows: inHeight,
        cols: inWidth,
        value: () => 0,
        range: inRange,
        chars,
      }),
    );
    routed = { upto: -1, sums: backward.grad_input.map(() => new Float64Array(inHeight * inWidth)) };
    roots.gradOutSub.textContent = `${trace.shape.channels}×${height}×${width}`;
    roots.gradInSub.textContent = `${data.input.length}×${inHeight}×${inWidth}`;
  }

  /** Add (sign +1) or take back (−1) route `index`'s amounts into the input gradient. */
  function route(index, sign) {
    const [height, width] = inShape();
    const step = trace.steps[index];
    const amounts = trace.backward.routes[index].amounts;
    const sums = routed.sums[step.channel];
    const touched = [];
    step.rows.forEach((r, i) =>
      step.cols.forEach((c, j) => {
        if (r < 0 || c < 0 || r >= height || c >= width || amounts[i][j] === 0) return;
        sums[r * width + c] += sign * amounts[i][j];
        touched.push([r, c]);
      }),
    );
    for (const [r, c] of touched) gradIns[step.channel].setValue(r, c, sums[r * width + c]);
    return touched;
  }

  function stepBackward(index) {
    if (index < routed.upto) {
      for (let i = routed.upto; i > index; i--) route(i, -1);
    } else {
      for (let i = routed.upto + 1; i <= index; i++) route(i, +1);
    }
    routed.upto = index;
    const step = trace.steps[index];
    const amounts = trace.backward.routes[index].amounts;
    const receivers = [];
    step.rows.forEach((r, i) => step.cols.forEach((c, j) => amounts[i][j] !== 0 && receivers.push([r, c])));
    highlightChannel(gradIns, "window", step.channel, receivers);
    highlightChannel(gradOuts, "current", step.channel, [[step.y, step.x]]);
  }

  function hoverOutput(c, r, x) {
    handlers.onHoverStep(stepAt(c, r, x, ...outShape()));
  }

  function pickOutput(c, r, x) {
    const index = stepAt(c, r, x, ...outShape());
    if (index !== null) handlers.onPickStep(index);
  }

  return {
    /** A new trace and the numbers it was made from ({input}). */
    show(newTrace, newData) {
      clear();
      trace = newTrace;
      data = newData;
      revealed = 0;
      routed = null;
      buildInputs();
      buildOutputs();
      buildBackward();
    },
    /** Draw step `index`. */
    step(index) {
      if (!trace || trace.steps.length === 0) return;
      const step = trace.steps[index];
      const cells = windowCells(step.rows, step.cols);
      const unused = [];
      step.rows.forEach((r, i) =>
        step.cols.forEach((c, j) => step.weights && step.weights[i][j] === 0 && unused.push([r, c])),
      );
      inputs.forEach((grid, c) => {
        const mine = c === step.channel;
        grid.highlight("window", mine ? cells : []);
        grid.highlight("muted", mine ? unused : []);
        grid.highlight("current", mine && step.chosen ? [step.chosen] : []);
        grid.figure.classList.toggle("is-idle", !mine);
      });
      revealed = revealOutputs(outputs, trace.output, revealed, index + 1);
      highlightChannel(outputs, "current", step.channel, [[step.y, step.x]]);
      if (trace.backward) stepBackward(index);
    },
    /** Preview another step's window (hover) without moving the player; null ends it. */
    preview(index) {
      if (!trace) return;
      const step = index === null ? null : trace.steps[index];
      const cells = step ? windowCells(step.rows, step.cols) : [];
      highlightChannel(inputs, "hover", step?.channel, cells);
      for (const grids of [outputs, gradOuts]) highlightChannel(grids, "hover", step?.channel, step ? [[step.y, step.x]] : []);
    },
    /** Show a just-edited number before the new trace arrives. */
    setInputValue(c, r, x, value) {
      inputs[c]?.setValue(r, x, value);
    },
  };
}
