// The pooling explorer (/pool): wires the page state, the controls, the API and the shared player
// and grids together. One trace per configuration change (a second one carrying the upstream
// gradient when the backward view is on), plus the same picture pooled three ways.

import { t } from "./i18n.js";
import { ApiError, clearErrors, getJSON, isAbort, latestOnly, postJSON, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { createPlayer } from "./player.js";
import { addGridFigure } from "./grid.js";
import { rangeOf } from "./colormap.js";
import { newSeed, randomInt, seededRandom } from "./random.js";
import { buildInput } from "./conv_data.js";
import { INPUT_SOURCE_FIELDS, POOL_STATE, TRACE_FIELDS } from "./pool_state.js";
import { createPoolView } from "./pool_view.js";
import { renderPoolMath } from "./pool_math.js";

const REFRESH_DELAY_MS = 120;
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
let current = null;
let hovered = null;
let refreshTimer = null;
let compared = [];
const latestTrace = latestOnly();
const latestCompare = latestOnly();

const view = createPoolView(
  {
    input: $("input-grids"), output: $("output-grids"), gradOut: $("grad-out-grids"),
    gradIn: $("grad-in-grids"), inputSub: $("input-sub"), outputSub: $("output-sub"),
    gradOutSub: $("grad-out-sub"), gradInSub: $("grad-in-sub"),
  },
  {
    onEdit: editCell,
    onHoverStep(index) {
      hovered = index;
      if (!current) return;
      view.preview(index);
      drawMath();
    },
    onPickStep: (index) => player.seek(index),
  },
);

const player = createPlayer($("player"), {
  index: state.get("step"),
  speed: state.get("speed"),
  onStep(index) {
    state.set({ step: index });
    draw(index);
  },
  onSpeedChange: (speed) => state.set({ speed }),
});

function drawMath() {
  if (current) renderPoolMath(mathRoot, current, hovered ?? player.index, hovered !== null);
}

function draw(index) {
  if (!current) return;
  view.step(index);
  drawMath();
}

function editCell(at, value) {
  const key = (edit) => edit.at.join(",");
  const edits = state.get("edits").filter((other) => key(other) !== at.join(","));
  state.set({ edits: [...edits, { kind: "i", at, value }] });
  view.setInputValue(at[0], at[1], at[2], value);
}

function afterUserChange(name) {
  const values = state.values();
  const patch = {};
  if (INPUT_SOURCE_FIELDS.has(name) && values.edits.length > 0) patch.edits = [];
  if (name === "input") {
    const sample = presets.inputs.find((item) => item.name === values.input);
    if (sample) Object.assign(patch, { channels: String(sample.channels), size: sample.values[0].length });
  }
  state.set(patch);
}

function fillInputSelect() {
  const select = form.elements.namedItem("input");
  const option = (value, text) => Object.assign(document.createElement("option"), { value, textContent: text });
  select.replaceChildren(
    ...presets.inputs.map((item) => option(item.name, t(`pool.sample.${item.name}`))),
    option("random", t("pool.sample.random")),
  );
  if (![...select.options].some((o) => o.value === state.get("input"))) {
    state.set({ input: presets.inputs[0]?.name ?? "random" });
  }
  select.value = state.get("input");
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

async function refresh() {
  refreshTimer = null;
  const values = state.values();
  const input = buildInput(values, presets);
  stage.setAttribute("aria-busy", "true");
  refreshComparison(values, input);
  let trace;
  try {
    trace = await latestTrace((signal) => tracePool(values, input, signal));
  } catch (error) {
    if (isAbort(error)) return;
    showErrors(form, error instanceof ApiError ? error : new ApiError(0, String(error)), FIELD_ALIASES);
    stage.classList.add("is-stale");
    return;
  }
  clearErrors(form);
  stage.classList.remove("is-stale");
  current = trace;
  hovered = null;
  showFormula(trace);
  view.show(trace, { input });
  player.setCount(trace.steps.length, state.get("step"));
  state.set({ step: player.index });
  draw(player.index);
  stage.setAttribute("aria-busy", "false");
  stage.dataset.steps = String(trace.steps.length);
  stage.dataset.traces = String(Number(stage.dataset.traces || 0) + 1); // tests wait on this
}

function scheduleRefresh() {
  if (refreshTimer !== null) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
}

$("new-random").addEventListener("click", () => {
  state.set({ seed: newSeed(), input: "random" });
  afterUserChange("seed");
});

state.subscribe((changed) => {
  if (changed.has("kind") || changed.has("backward")) updateAvailability();
  if ([...changed].some((name) => TRACE_FIELDS.has(name))) scheduleRefresh();
  if (changed.has("step") && current && state.get("step") !== player.index) player.seek(state.get("step"));
  if (changed.has("speed")) player.setSpeed(state.get("speed"));
});

async function start() {
  try {
    presets = await getJSON("/api/conv/presets");
  } catch (error) {
    showErrors(form, error);
  }
  fillInputSelect();
  bindControls(form, state, { onUserChange: afterUserChange });
  updateAvailability();
  await refresh();
  document.body.dataset.ready = "true";
}

start();
