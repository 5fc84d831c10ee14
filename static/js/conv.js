// The convolution explorer (/conv): the page state, its controls, the kernel presets and the
// requests (output size and trace); explorer.js wires them to the shared player, the view and
// the written-out arithmetic. One trace per configuration change; the player animates it locally.

import { t } from "./i18n.js";
import { ApiError, isAbort, postJSON } from "./api.js";
import { createState } from "./state.js";
import { formatCount } from "./format.js";
import { CONV_STATE, KERNEL_SOURCE_FIELDS } from "./conv_state.js";
import { buildWeights, presetNames, shapeRequest, traceRequest } from "./conv_data.js";
import { createConvView } from "./conv_view.js";
import { renderKernelMath } from "./kernel_math.js";
import {
  bindNewRandom, createExplorer, fillSampleSelect, loadPresets, option, samplePatch,
} from "./explorer.js";

// API field names → the control (state field) whose error slot shows the message
const FIELD_ALIASES = {
  height: "size", width: "size", kernel_size: "kernel", kernels: "kernel", out_channels: "filters",
  output_padding: "outpad", in_channels: "channels",
};

const $ = (id) => document.getElementById(id);
const state = createState(CONV_STATE);
const form = $("conv-controls");
const mathRoot = $("kernel-math");
let presets = { kernels: [], inputs: [] };

const explorer = createExplorer({
  state,
  form,
  stage: $("stage"),
  player: $("player"),
  fieldAliases: FIELD_ALIASES,
  load,
  createView: (handlers) => createConvView(
    {
      input: $("input-grids"), kernel: $("kernel-grids"), output: $("output-grids"),
      inputSub: $("input-sub"), kernelTitle: $("kernel-title"), kernelSub: $("kernel-sub"),
      outputSub: $("output-sub"),
    },
    handlers,
  ),
  renderMath: ({ trace, data }, index, preview) => renderKernelMath(mathRoot, trace, index, data, preview),
});

function afterUserChange(name) {
  const values = state.values();
  const patch = samplePatch(name, values, presets);
  if (KERNEL_SOURCE_FIELDS.has(name)) {
    const edits = (patch.edits ?? values.edits).filter((e) => e.kind === "i");
    if (edits.length !== values.edits.length) patch.edits = edits;
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
bindNewRandom($("new-random"), state, afterUserChange);

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

// --- one trace (and output size) per configuration ----------------------------------------------
/**
 * One request per change: a trace carries its own output size and formula (the same answer as
 * /api/conv/shape). Only a refused trace asks /shape as well, so the output size shows even
 * then; every failure is reported, both together.
 */
async function load(values, signal) {
  const body = traceRequest(values, presets);
  const data = { input: body.input, weights: buildWeights(values, presets), bias: body.bias, activation: values.activation };
  const settle = (promise) => promise.then(
    (value) => ({ status: "fulfilled", value }), (reason) => ({ status: "rejected", reason }),
  );
  const trace = await settle(postJSON("/api/conv/trace", body, { signal }));
  if (trace.status === "rejected" && isAbort(trace.reason)) throw trace.reason; // superseded
  const shape = trace.status === "fulfilled"
    ? { status: "fulfilled", value: trace.value.shape }
    : await settle(postJSON("/api/conv/shape", shapeRequest(values), { signal }));
  const aborted = [shape, trace].find((r) => r.status === "rejected" && isAbort(r.reason));
  if (aborted) throw aborted.reason; // superseded
  if (shape.status === "fulfilled") showShape(shape.value);
  else clearShape();
  const failures = [shape, trace].filter((r) => r.status === "rejected").map((r) => r.reason);
  const fields = Object.assign({}, ...failures.map((e) => (e instanceof ApiError ? e.fields : { "*": String(e) })));
  const error = failures.length > 0 ? new ApiError(failures[0].status ?? 0, failures[0].message, fields) : null;
  if (trace.status !== "fulfilled") throw error;
  return { trace: trace.value, data, error };
}

state.subscribe((changed) => {
  if (changed.has("filters") || changed.has("preset")) renderPresetSelects();
  if (changed.has("transposed") || changed.has("channels")) updateAvailability();
});

async function start() {
  presets = await loadPresets(form);
  fillSampleSelect(form, state, presets, "conv.sample");
  renderPresetSelects();
  updateAvailability();
  await explorer.start(afterUserChange);
}

start();
