// The pooling explorer (/pool): the page state, its controls and the requests (one trace per
// configuration, a second one carrying the upstream gradient when the backward view is on, and
// the same picture pooled three ways); explorer.js wires them to the shared player, the view and
// the written-out arithmetic.

import { t } from "./i18n.js";
import { isAbort, latestOnly, postJSON } from "./api.js";
import { createState } from "./state.js";
import { addGridFigure } from "./grid.js";
import { rangeOf } from "./colormap.js";
import { randomInt, seededRandom } from "./random.js";
import { buildInput } from "./conv_data.js";
import { POOL_STATE } from "./pool_state.js";
import { createPoolView } from "./pool_view.js";
import { renderPoolMath } from "./pool_math.js";
import { bindNewRandom, createExplorer, fillSampleSelect, loadPresets, samplePatch } from "./explorer.js";

const COMPARED = ["max", "avg", "l2"];
const FIELD_ALIASES = {
  kernel_size: "kernel", ceil_mode: "ceil", count_include_pad: "include_pad", grad_output: "backward",
};

const $ = (id) => document.getElementById(id);
const state = createState(POOL_STATE);
const form = $("pool-controls");
const stage = $("stage");
const mathRoot = $("pool-math");
let presets = { kernels: [], inputs: [] };
let compared = [];
const latestCompare = latestOnly();

const explorer = createExplorer({
  state,
  form,
  stage,
  player: $("player"),
  fieldAliases: FIELD_ALIASES,
  load,
  createView: (handlers) => createPoolView(
    {
      input: $("input-grids"), output: $("output-grids"), gradOut: $("grad-out-grids"),
      gradIn: $("grad-in-grids"), inputSub: $("input-sub"), outputSub: $("output-sub"),
      gradOutSub: $("grad-out-sub"), gradInSub: $("grad-in-sub"),
    },
    handlers,
  ),
  renderMath: ({ trace }, index, preview) => renderPoolMath(mathRoot, trace, index, preview),
});

function afterUserChange(name) {
  state.set(samplePatch(name, state.values(), presets));
}

function updateAvailability() {
  const values = state.values();
  const global = values.kind === "global_avg";
  for (const name of ["kernel", "stride", "padding", "ceil"]) form.elements.namedItem(name).disabled = global;
  form.elements.namedItem("include_pad").disabled = values.kind !== "avg";
  stage.classList.toggle("has-backward", values.backward);
}

// --- requests -----------------------------------------------------------------------------------
function poolRequest(values, input, kind) {
  return {
    input,
    kind,
    kernel_size: values.kernel,
    stride: values.stride === 0 ? null : values.stride,
    padding: values.padding,
    ceil_mode: values.ceil,
    count_include_pad: values.include_pad,
  };
}

/** Seeded upstream gradient ∂L/∂y: integers 1–9, one per output cell. */
function upstreamGradient(shape, seed) {
  const next = seededRandom(seed * 7919 + 11);
  return Array.from({ length: shape.channels }, () =>
    Array.from({ length: shape.height }, () => Array.from({ length: shape.width }, () => randomInt(next, 1, 9))),
  );
}

async function tracePool(values, input, signal) {
  const body = poolRequest(values, input, values.kind);
  const forward = await postJSON("/api/pool/trace", body, { signal });
  if (!values.backward) return forward;
  const grad = upstreamGradient(forward.shape, values.seed);
  return postJSON("/api/pool/trace", { ...body, grad_output: grad }, { signal });
}

function showFormula(trace) {
  const shape = trace.shape;
  $("fact-output").textContent = `${shape.channels}×${shape.height}×${shape.width}`;
  $("fact-stride").textContent = trace.stride.join("×");
  $("formula-general").textContent = shape.formula.general;
  $("formula-height").textContent = shape.formula.height;
  $("formula-width").textContent = shape.formula.width;
}

function showComparison(traces) {
  for (const grid of compared) grid.destroy();
  const root = $("compare-grids");
  root.replaceChildren();
  const range = rangeOf(traces.flatMap((trace) => trace.output[0].flat()));
  compared = traces.map((trace) => {
    const plane = trace.output[0];
    const grid = addGridFigure(root, t(`pool.kind.${trace.kind}`), {
      rows: plane.length, cols: plane[0].length, value: (r, c) => plane[r][c], range,
    });
    grid.figure.dataset.kind = trace.kind;
    return grid;
  });
}

async function refreshComparison(values, input) {
  try {
    const traces = await latestCompare((signal) =>
      Promise.all(COMPARED.map((kind) => postJSON("/api/pool/trace", poolRequest(values, input, kind), { signal }))),
    );
    showComparison(traces);
  } catch (error) {
    if (!isAbort(error)) $("compare-grids").replaceChildren();
  }
}

async function load(values, signal) {
  const input = buildInput(values, presets);
  refreshComparison(values, input);
  const trace = await tracePool(values, input, signal);
  showFormula(trace);
  return { trace, data: { input } };
}

bindNewRandom($("new-random"), state, afterUserChange);

state.subscribe((changed) => {
  if (changed.has("kind") || changed.has("backward")) updateAvailability();
});

async function start() {
  presets = await loadPresets(form);
  fillSampleSelect(form, state, presets, "pool.sample");
  updateAvailability();
  await explorer.start(afterUserChange);
}

start();
