// The receptive-field explorer (/receptive-field): wires the page state, the controls, the
// picture picker, the API and the views. Per model: one request for every layer's field (the
// table, the layer list, the depth slider). Per unit: one cheap GET for its box (drawn at once)
// and one POST for its effective field on the picture (heatmap, picture, layer map), sent one
// at a time. The ERF-vs-depth chart is one POST per growth rule.

import { t } from "./i18n.js";
import { clearErrors, getJSON, oneAtATime, postForm, postJSON, retryDelay, showErrors } from "./api.js";
import { fillModelOptions, modelCatalogue } from "./model_catalogue.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { formatNumber, formatPair } from "./format.js";
import { createPicker } from "./feature_picker.js";
import { DEFAULT_SAMPLE, ERF_FIELDS, RF_STATE } from "./rf_state.js";
import { createPictureView } from "./rf_picture.js";
import { createMapView } from "./rf_map.js";
import { createLayerTable } from "./rf_table.js";
import { SWEEPS, createSweepChart } from "./rf_sweep.js";
import { markRedrawn } from "./redrawn.js";

const $ = (id) => document.getElementById(id);
const RETRY_MS = 2000; // when a 429 carries no Retry-After (the server's default is 2 s)
const state = createState(RF_STATE);
const form = $("rf-controls");
const results = $("results");
let models = [];
let samples = [];
let input = null; // {channels, height, width} the fields are computed for
let fields = null; // GET /receptive-fields answer
let spatial = []; // its layers that have a feature map, in order
let unit = null; // GET /receptive-field answer for the chosen unit
let erfShown = null; // key of the request whose heatmap is on screen
let fileVersion = 0; // each file taken by the picker is a new picture, whatever its name
let ready = false; // the models and samples are known: state changes may load things
let modelLoad = 0; // counts loadModel calls: an answer for an earlier model is dropped
let firstUnit = null; // the model's default unit as its fields answer carried it (no GET again)

const picture = createPictureView($("picture-canvas"));
const map = createMapView($("map-canvas"), { onPick: (y, x) => state.set({ y, x }) });
const table = createLayerTable($("rf-rows"), $("table-scroll"), {
  onPick: (name) => state.set({ layer: name }),
});
const sweepChart = createSweepChart($("sweep-chart"), $("sweep-caption"));
const picker = createPicker(
  { select: $("c-sample"), zone: $("drop-zone"), input: $("c-image"), name: $("upload-name") },
  {
    onFile() {
      fileVersion += 1;
      picker.setSamples(samples, "");
      if (!state.set({ sample: "" }).has("sample")) updateErf();
    },
  },
);

const modelQuery = () => new URLSearchParams({
  channels: input.channels, height: input.height, width: input.width,
});
const modelURL = (path) => `/api/models/${encodeURIComponent(state.get("model"))}/${path}`;
const layerOf = (name) => fields?.layers.find((layer) => layer.name === name) ?? null;

// --- the model's layers ------------------------------------------------------------------------

function fillLayers() {
  $("c-layer").replaceChildren(...spatial.map((layer, index) => new Option(
    `${index + 1}. ${layer.name} · ${layer.output_size.height}×${layer.output_size.width}`, layer.name,
  )));
  const slider = $("c-depth");
  slider.max = String(Math.max(0, spatial.length - 1));
  slider.disabled = spatial.length < 2;
}

/** Drop everything the previous model showed at once (its box, facts, table and layers), so
 * nothing of it stays on screen while the new model's fields are on their way. */
function clearModel() {
  unit = null;
  firstUnit = null;
  fields = null;
  spatial = [];
  erfShown = null;
  input = null; // the new model's own default input (a run's size comes back with its ERF)
  table.render([]);
  fillLayers();
  picture.setUnit(null);
  picture.clearHeat();
  map.clearMap();
  for (const fact of $("facts").querySelectorAll("dd")) fact.textContent = "–";
  for (const id of ["box-caption", "map-caption", "depth-value", "weights-note", "status"]) $(id).textContent = "";
  delete results.dataset.erf;
}

async function loadModel() {
  const load = ++modelLoad;
  const info = models.find((model) => model.name === state.get("model"));
  input = input ?? info.default_input; // bundled weights are trained at the default input
  const query = modelQuery();
  results.setAttribute("aria-busy", "true");
  let answer;
  try {
    answer = await getJSON(`${modelURL("receptive-fields")}?${query}`);
  } catch (error) {
    if (load === modelLoad) showErrors(form, error);
    return;
  }
  if (load !== modelLoad) return; // another model (or input size) was chosen meanwhile
  fields = answer;
  spatial = fields.layers.filter((layer) => layer.output_size);
  table.render(fields.layers);
  fillLayers();
  picture.setSize(input, reachPastBorder());
  if (!spatial.length) {
    $("status").textContent = t("rf.status.flat");
    markRedrawn("box");
    results.setAttribute("aria-busy", "false");
    return;
  }
  if (!layerOf(state.get("layer"))?.output_size) {
    // the model's own default: the deepest map before global pooling, its centre, which
    // the fields answer carries, so showUnit draws it without asking again
    const first = fields.default_unit;
    const layer = first ? first.layer : spatial[spatial.length - 1].name;
    firstUnit = first && { answer: first, model: state.get("model"), query: query.toString() };
    const [y, x] = first ? [first.unit.y, first.unit.x] : [-1, -1];
    if (state.set({ layer, y, x }).size) return; // the state change shows the unit
  }
  showUnit();
}

/** How far any unit's field reaches past the picture's border, in input pixels (the padding
 * the picture view shows): unit 0 reaches (r − 1)/2 − start before it, the last unit
 * start + (n − 1)·jump + (r − 1)/2 − (size − 1) after it. Global layers see everything. */
function reachPastBorder() {
  let reach = 0;
  for (const layer of spatial.filter((item) => !item.is_global)) {
    for (const axis of ["height", "width"]) {
      const half = (layer.size[axis] - 1) / 2;
      const last = layer.start[axis] + (layer.output_size[axis] - 1) * layer.jump[axis];
      reach = Math.max(reach, layer.effective_padding[axis], last + half - (input[axis] - 1));
    }
  }
  return reach;
}

/** The unit of `name` whose field is centred nearest the current unit's (the same spot). */
function nearestUnit(name) {
  const layer = layerOf(name);
  if (!layer?.output_size) return [-1, -1];
  const centre = unit
    ? [(unit.box.y0 + unit.box.y1) / 2, (unit.box.x0 + unit.box.x1) / 2]
    : [(input.height - 1) / 2, (input.width - 1) / 2];
  const axes = [["height", centre[0]], ["width", centre[1]]];
  return axes.map(([axis, c]) => Math.max(0, Math.min(layer.output_size[axis] - 1,
    Math.round((c - layer.start[axis]) / layer.jump[axis]))));
}

// --- the chosen unit ---------------------------------------------------------------------------

async function showUnit() {
  const layer = layerOf(state.get("layer"));
  if (!layer?.output_size) return;
  const { height, width } = layer.output_size;
  const [y, x] = [state.get("y"), state.get("x")];
  if (y < 0 || x < 0 || y >= height || x >= width) {
    const centre = { y: y >= 0 && y < height ? y : Math.floor(height / 2),
                     x: x >= 0 && x < width ? x : Math.floor(width / 2) };
    if (state.set(centre).size) return; // shown by the state change
  }
  const query = modelQuery();
  for (const name of ["layer", "y", "x"]) query.set(name, state.get(name));
  const model = state.get("model");
  const first = firstUnit?.answer;
  const known = first && firstUnit.model === model && firstUnit.query === modelQuery().toString()
    && first.layer === state.get("layer") && first.unit.y === y && first.unit.x === x;
  try {
    const answer = known ? first : await getJSON(`${modelURL("receptive-field")}?${query}`);
    if (state.get("model") !== model || answer.layer !== state.get("layer") || answer.unit.y !== state.get("y")
        || answer.unit.x !== state.get("x")) return; // a newer unit was chosen meanwhile
    unit = answer;
  } catch (error) {
    showErrors(form, error);
    return;
  }
  clearErrors(form);
  const index = spatial.findIndex((item) => item.name === unit.layer);
  $("c-layer").value = unit.layer;
  $("c-depth").value = String(index);
  $("depth-value").textContent = `${index + 1} / ${spatial.length}`;
  table.select(unit.layer);
  picture.setUnit(unit);
  map.setSize(unit.output_size);
  map.setUnit(unit.unit.y, unit.unit.x);
  describeUnit();
  markRedrawn("box");
  updateErf();
}

function describeUnit() {
  const { box, clipped_box: seen } = unit;
  $("fact-size").textContent = formatPair(unit.size);
  $("fact-jump").textContent = formatPair(unit.jump);
  $("fact-start").textContent = formatPair(unit.start);
  $("fact-box").textContent = t("rf.box.rows_cols", { y0: box.y0, y1: box.y1, x0: box.x0, x1: box.x1 });
  $("fact-padding").textContent = String(unit.padding_cells);
  const parts = [t("rf.box.caption", {
    layer: unit.layer, y: unit.unit.y, x: unit.unit.x,
    size: `${formatNumber(unit.size.height)}×${formatNumber(unit.size.width)}`, y0: box.y0, y1: box.y1, x0: box.x0, x1: box.x1,
  })];
  if (!seen) parts.push(t("rf.box.only_padding"));
  else if (unit.padding_cells > 0) parts.push(t("rf.box.padding", { cells: unit.padding_cells }));
  if (unit.unreached_cells > 0) parts.push(t("rf.box.unreached", { cells: unit.unreached_cells }));
  if (unit.is_global) parts.push(t("rf.box.global"));
  if (!unit.aligned) parts.push(t("rf.box.not_aligned"));
  $("box-caption").textContent = parts.join(" ");
  describeMap();
}

function describeMap() {
  const { y, x } = unit.unit;
  const value = map.valueAt(y, x);
  $("map-caption").textContent = [
    t("rf.map.caption", { layer: unit.layer, height: unit.output_size.height,
                          width: unit.output_size.width, y, x }),
    value === null ? "" : t("rf.map.value", { value: formatNumber(value, 3) }),
  ].filter(Boolean).join(" ");
}

// --- its effective field on the picture --------------------------------------------------------

function erfRequest() {
  const values = state.values();
  const request = { model: values.model, layer: values.layer, y: values.y, x: values.x };
  if (values.run) request.run = values.run;
  else request.weights = values.weights;
  if (!picker.file) request.sample = values.sample || DEFAULT_SAMPLE;
  return request;
}

const requestKey = (request) => JSON.stringify({ ...request, file: picker.file ? fileVersion : null });

function weightsText(answer) {
  if (state.get("run")) return t("rf.weights.note.run", { run: state.get("run") });
  if (answer.weights === "trained") return t("rf.weights.note.trained", { file: answer.weights_file });
  if (answer.weights === "imagenet" || answer.weights === "imported") {
    return t(`rf.weights.note.${answer.weights}`, { file: answer.weights_file });
  }
  return t(state.get("weights") === "trained" ? "rf.weights.note.untrained" : "rf.weights.note.initialisation");
}

async function computeErf() {
  if (!unit || unit.layer !== state.get("layer") || state.get("y") < 0) return;
  const request = erfRequest();
  const key = requestKey(request);
  if (key === erfShown) return;
  results.setAttribute("aria-busy", "true");
  $("status").textContent = t("rf.status.working");
  try {
    const answer = await postForm("/api/receptive-field/effective", request, picker.file);
    if (requestKey(erfRequest()) !== key) return; // the unit or picture changed: run again
    const size = answer.input;
    if (size.height !== input.height || size.width !== input.width) {
      input = size; // a training run's own input size: the fields follow it
      erfShown = null;
      loadModel();
      return;
    }
    await Promise.all([picture.setImages(answer.picture, answer.heatmap), map.setMap(answer.feature_map)]);
    erfShown = key;
    describeMap();
    $("weights-note").textContent = weightsText(answer);
    $("fact-sigma").textContent = formatPair(answer.fit.sigma);
    $("fact-share").textContent = t("rf.erf.share", {
      share: formatNumber(answer.share_95 * 100, 1), pixels: answer.pixels_95,
    });
    // a unit whose channels are all 0 here (a ReLU below zero) has no gradient at all
    $("status").textContent = answer.pixels_95 === 0 ? t("rf.status.silent") : t("rf.status.done", {
      sigma: formatPair(answer.fit.sigma), share: formatNumber(answer.share_95 * 100, 1),
    });
    results.dataset.erf = key;
    markRedrawn("erf");
  } catch (error) {
    if (error.status === 429) {
      // this browser's earlier heavy requests still hold their server slots: ask again soon
      $("status").textContent = t("rf.status.busy");
      setTimeout(() => updateErf(), retryDelay(error, RETRY_MS));
      return;
    }
    showErrors(form, error);
    $("status").textContent = t("rf.status.failed");
  }
  results.setAttribute("aria-busy", "false");
}
const updateErf = oneAtATime(computeErf);

// --- ERF against depth -------------------------------------------------------------------------

async function computeSweep() {
  const growth = state.get("growth");
  try {
    const answer = await postJSON("/api/receptive-field/sweep", SWEEPS[growth]);
    if (state.get("growth") !== growth) return; // another rule was chosen: run again
    sweepChart.show(answer);
    $("sweep-section").dataset.growth = growth;
    markRedrawn("sweep");
  } catch (error) {
    if (error.status === 429) setTimeout(() => updateSweep(), retryDelay(error, RETRY_MS));
    else showErrors($("sweep-controls"), error);
  }
}
const updateSweep = oneAtATime(computeSweep);

// --- wiring ------------------------------------------------------------------------------------

function showRun() {
  const run = state.get("run");
  $("run-note").hidden = !run;
  $("run-text").textContent = run ? t("rf.run.using", { run }) : "";
  form.elements.weights.disabled = Boolean(run);
}

// Before bindControls' own listener: choosing a sample drops the uploaded file first, so the
// request the state change starts already sends the sample.
$("c-sample").addEventListener("change", () => {
  picker.clearFile();
  picker.setSamples(samples, $("c-sample").value);
});
bindControls(form, state, {
  onUserChange(name) {
    // the previous model's layer and run mean nothing for this one (the subscriber has
    // already cleared its detail and asked for the new model's fields)
    if (name === "model") state.set({ layer: "", y: -1, x: -1, run: "" });
  },
});
bindControls($("sweep-controls"), state);
$("c-depth").addEventListener("input", () => {
  const layer = spatial[Number($("c-depth").value)];
  if (layer) state.set({ layer: layer.name });
});
$("run-clear").addEventListener("click", () => state.set({ run: "" }));

state.subscribe((changed) => {
  if (!ready) return;
  if (changed.has("run")) showRun();
  if (changed.has("erf")) picture.setShowHeat(state.get("erf"));
  if (changed.has("growth")) updateSweep();
  if (changed.has("model")) {
    clearModel();
    loadModel();
    return;
  }
  if (changed.has("layer") && !changed.has("y") && !changed.has("x")) {
    const [y, x] = nearestUnit(state.get("layer"));
    if (state.set({ y, x }).size) return; // that change shows the unit
  }
  if (changed.has("layer") || changed.has("y") || changed.has("x")) {
    showUnit();
  } else if ([...changed].some((name) => ERF_FIELDS.has(name))) {
    updateErf();
  }
});

async function start() {
  showRun();
  picture.setShowHeat(state.get("erf"));
  updateSweep(); // independent of the model: starts at once
  try {
    [models, samples] = await Promise.all([modelCatalogue(), getJSON("/api/features/samples")]);
  } catch (error) {
    showErrors(form, error);
    return;
  }
  fillModelOptions($("c-model"), models);
  if (!models.some((model) => model.name === state.get("model"))) state.set({ model: "resnet18" });
  $("c-model").value = state.get("model");
  if (!samples.some((sample) => sample.name === state.get("sample"))) state.set({ sample: DEFAULT_SAMPLE });
  picker.setSamples(samples, state.get("sample"));
  ready = true;
  await loadModel();
  document.body.dataset.ready = "true";
}

start();
