// The convolution explorer (/conv): wires the page state, the controls, the API and the shared
// player and grids together. One trace per configuration change; the player animates it locally.

import { t } from "./i18n.js";
import { ApiError, clearErrors, getJSON, isAbort, latestOnly, postJSON, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { createPlayer } from "./player.js";
import { newSeed } from "./random.js";
import { formatCount } from "./format.js";
import { CONV_STATE, INPUT_SOURCE_FIELDS, KERNEL_SOURCE_FIELDS, TRACE_FIELDS } from "./conv_state.js";
import { buildWeights, presetNames, shapeRequest, traceRequest } from "./conv_data.js";
import { createConvView } from "./conv_view.js";
import { renderKernelMath } from "./kernel_math.js";

const REFRESH_DELAY_MS = 120; // lets a burst of changes (typing a number) become one trace
// API field names → the control (state field) whose error slot shows the message
const FIELD_ALIASES = {
  height: "size", width: "size", kernel_size: "kernel", kernels: "kernel", out_channels: "filters",
  output_padding: "outpad", in_channels: "channels",
};

const $ = (id) => document.getElementById(id);
const state = createState(CONV_STATE);
const form = $("conv-controls");
const stage = $("stage");
const mathRoot = $("kernel-math");
let presets = { kernels: [], inputs: [] };
let current = null; // { trace, data } on screen
let hovered = null;
let refreshTimer = null;
const latestShape = latestOnly();
const latestTrace = latestOnly();

const view = createConvView(
  {
    input: $("input-grids"), kernel: $("kernel-grids"), output: $("output-grids"),
    inputSub: $("input-sub"), kernelTitle: $("kernel-title"), kernelSub: $("kernel-sub"),
    outputSub: $("output-sub"),
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
  if (!current) return;
  const index = hovered ?? player.index;
  renderKernelMath(mathRoot, current.trace, index, current.data, hovered !== null);
}

function draw(index) {
  if (!current) return;
  view.step(index);
  drawMath();
}

// --- edits --------------------------------------------------------------------------------------
function editCell(kind, at, value) {
  const key = (edit) => `${edit.kind}:${edit.at.join(",")}`;
  const edit = { kind, at, value };
  const edits = state.get("edits").filter((other) => key(other) !== key(edit));
  state.set({ edits: [...edits, edit] });
  if (kind === "i") view.setInputValue(at[0], at[1], at[2], value);
}

function afterUserChange(name) {
  const patch = {};
  const values = state.values();
  let edits = values.edits;
  if (INPUT_SOURCE_FIELDS.has(name)) edits = edits.filter((e) => e.kind !== "i");
  if (KERNEL_SOURCE_FIELDS.has(name)) edits = edits.filter((e) => e.kind === "i");
  if (edits.length !== values.edits.length) patch.edits = edits;
  if (name === "input") {
    const sample = presets.inputs.find((item) => item.name === values.input);
    if (sample) Object.assign(patch, { channels: String(sample.channels), size: sample.values[0].length });
  }
  if (name === "kernel") {
    // a preset of another size would be zero-filled to k×k: a random k×k kernel teaches better
    const sizeOf = (preset) => presets.kernels.find((item) => item.name === preset)?.values.length;
    const fitting = presetNames(values).map((preset) => (sizeOf(preset) === values.kernel ? preset : "random"));
    if (fitting.join() !== values.preset.join()) patch.preset = fitting;
  }
  if (values.channels === "1" && values.groups !== "1") patch.groups = "1";
  state.set(patch);
}

// --- controls built from the presets ------------------------------------------------------------
function option(value, text) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = text;
  return node;
}

function fillInputSelect() {
  const select = form.elements.namedItem("input");
  select.replaceChildren(
    ...presets.inputs.map((item) => option(item.name, t(`conv.sample.${item.name}`))),
    option("random", t("conv.sample.random")),
  );
  const known = [...select.options].some((o) => o.value === state.get("input"));
  if (!known) state.set({ input: presets.inputs[0]?.name ?? "random" });
  select.value = state.get("input");
}

function renderPresetSelects() {
  const list = $("preset-list");
  const names = presetNames(state.values());
  list.replaceChildren(
    ...names.map((name, o) => {
      const wrap = document.createElement("div");
      wrap.className = "control";
      const label = document.createElement("label");
      label.htmlFor = `c-preset-${o}`;
      label.textContent = t("conv.preset_for", { n: o + 1 });
      const select = document.createElement("select");
      select.id = `c-preset-${o}`;
      select.dataset.filter = String(o);
      select.append(
        ...presets.kernels.map((item) => option(item.name, t(`kernel.${item.name}`))),
        option("random", t("kernel.random")),
      );
      select.value = presets.kernels.some((item) => item.name === name) ? name : "random";
      wrap.append(label, select);
      return wrap;
    }),
  );
}

$("preset-list").addEventListener("change", (event) => {
  const o = Number(event.target.dataset.filter);
  const names = presetNames(state.values());
  names[o] = event.target.value;
  const patch = { preset: names };
  const preset = presets.kernels.find((item) => item.name === event.target.value);
  if (preset && preset.values.length !== state.get("kernel")) patch.kernel = preset.values.length;
  state.set(patch);
  afterUserChange("preset");
});

form.addEventListener("submit", (event) => event.preventDefault()); // Enter in a field applies it

$("new-random").addEventListener("click", () => {
  state.set({ seed: newSeed(), input: "random" });
  afterUserChange("seed");
});

function updateAvailability() {
  const values = state.values();
  form.elements.namedItem("outpad").disabled = !values.transposed;
  form.elements.namedItem("groups").disabled = values.channels !== "3";
}

// --- the formula panel --------------------------------------------------------------------------
function showShape(shape) {
  const out = shape.output;
  $("fact-output").textContent = `${out.channels}×${out.height}×${out.width}`;
  $("fact-params").textContent = formatCount(shape.params);
  $("fact-macs").textContent = formatCount(shape.macs);
  $("formula-general").textContent = shape.formula.general;
  $("formula-height").textContent = shape.formula.height;
  $("formula-width").textContent = shape.formula.width;
  $("formula-params").textContent = shape.formula.params;
}

function clearShape() {
  for (const id of ["fact-output", "fact-params", "fact-macs"]) $(id).textContent = "–";
  for (const id of ["formula-general", "formula-height", "formula-width", "formula-params"]) $(id).textContent = "";
}

// --- one trace per configuration ----------------------------------------------------------------
async function refresh() {
  refreshTimer = null;
  const values = state.values();
  const body = traceRequest(values, presets);
  const data = { input: body.input, weights: buildWeights(values, presets), bias: body.bias, activation: values.activation };
  stage.setAttribute("aria-busy", "true");
  const [shape, trace] = await Promise.allSettled([
    latestShape((signal) => postJSON("/api/conv/shape", shapeRequest(values), { signal })),
    latestTrace((signal) => postJSON("/api/conv/trace", body, { signal })),
  ]);
  if ([shape, trace].some((r) => r.status === "rejected" && isAbort(r.reason))) return; // superseded
  const failures = [shape, trace].filter((r) => r.status === "rejected").map((r) => r.reason);
  if (failures.length > 0) {
    const fields = Object.assign({}, ...failures.map((e) => (e instanceof ApiError ? e.fields : { "*": String(e) })));
    showErrors(form, new ApiError(failures[0].status ?? 0, failures[0].message, fields), FIELD_ALIASES);
    form.classList.add("has-errors");
  } else {
    clearErrors(form);
    form.classList.remove("has-errors");
  }
  if (shape.status === "fulfilled") showShape(shape.value);
  else clearShape();
  if (trace.status !== "fulfilled") {
    stage.classList.add("is-stale");
    return;
  }
  stage.classList.remove("is-stale");
  current = { trace: trace.value, data };
  hovered = null;
  view.show(trace.value, data);
  player.setCount(trace.value.steps.length, state.get("step"));
  state.set({ step: player.index });
  draw(player.index);
  stage.setAttribute("aria-busy", "false");
  stage.dataset.steps = String(trace.value.steps.length);
  stage.dataset.traces = String(Number(stage.dataset.traces || 0) + 1); // tests wait on this
}

function scheduleRefresh() {
  if (refreshTimer !== null) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
}

state.subscribe((changed) => {
  if (changed.has("filters") || changed.has("preset")) renderPresetSelects();
  if (changed.has("transposed") || changed.has("channels")) updateAvailability();
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
  renderPresetSelects();
  bindControls(form, state, { onUserChange: afterUserChange });
  updateAvailability();
  await refresh();
  document.body.dataset.ready = "true";
}

start();
