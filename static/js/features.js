// The feature-map explorer (/features): wires the page state, the controls, the picture picker,
// the API and the views together. One POST per picture/model/option change; colormap changes
// and opening layers only fetch PNGs (the server keeps the maps of the last answers).

import { language, t } from "./i18n.js";
import { clearErrors, getJSON, isAbort, latestOnly, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { formatNumber, formatPercent, shapeText } from "./format.js";
import { DEFAULT_SAMPLE, FEATURES_STATE, REQUEST_FIELDS } from "./features_state.js";
import { noPredictionsKey, postFeatures, postLiveFeatures } from "./features_api.js";
import { createPicker } from "./feature_picker.js";
import { createLayerStrip } from "./feature_layers.js";
import { createLayerDetail } from "./feature_detail.js";
import { createRunPicker, loadRuns } from "./feature_runs.js";
import { renderFamiliarity } from "./features/familiarity.js";
import { bindUnits } from "./features/unit_view.js";
import { showWeightsCatalogue } from "./features/weights_catalogue.js";
import { bindDrawing } from "./features/draw_input.js";
import { bindModelUpload, fillModelPicker } from "./features/model_upload.js";

const $ = (id) => document.getElementById(id);
const state = createState(FEATURES_STATE);
const form = $("features-controls");
const results = $("results");
const latest = latestOnly();
let samples = [];
let colormaps = {};
let answer = null;
let pending = false; // a request is in flight: its answer will open the layer
let focusDetail = false; // a layer was picked by the user: show it and move the focus there
let runPicker = null; // the weights choice, once the runs are listed
let refreshing = Promise.resolve(); // the newest request's answer, rendered
let layerShown = Promise.resolve(); // the open layer's maps, drawn
let stroking = false; // a stroke is being drawn: its updates redraw the maps and prediction only

const picker = createPicker(
  { select: $("c-sample"), zone: $("drop-zone"), input: $("c-image"), name: $("upload-name") },
  {
    onFile(file) {
      picker.setSamples(samples, "");
      if (!state.set({ sample: "", layer: "", channel: 0 }).has("sample")) refresh();
      // A teacher's own picture travels to the class through the session (follow.js).
      window.dispatchEvent(new CustomEvent("cnnviz:picture", { detail: { file } }));
      showTeacherPictureNote();
    },
  },
);

// --- a class session: the teacher's own picture, or a plain note that it differs ----------------
const root = document.documentElement;
const teacherNote = document.createElement("p");
teacherNote.className = "form-error teacher-picture-note";
teacherNote.setAttribute("role", "status");
teacherNote.hidden = true;
$("upload-name").after(teacherNote);
let teacherPicture = ""; // the URL of the shared picture this page has taken
let started = false; // the samples are listed: a picture taken now stays taken

function showTeacherPictureNote() {
  const missing = Boolean(root.dataset.follow) && state.get("sample") === "" && !picker.file;
  teacherNote.textContent = missing ? t("features.teacher_picture_missing") : "";
  teacherNote.hidden = !missing;
}

async function takeTeacherPicture() {
  const url = root.dataset.followPicture;
  showTeacherPictureNote();
  if (!started || !url || state.get("sample") !== "") return;
  if (url === teacherPicture && picker.file) return;
  teacherPicture = url;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(response.statusText);
    const blob = await response.blob();
    picker.useFile(new File([blob], t("features.teacher_picture"), { type: blob.type }));
  } catch {
    teacherPicture = ""; // the note stays: this page shows the sample instead
  }
}
window.addEventListener("cnnviz:session-picture", takeTeacherPicture);
window.addEventListener("cnnviz:picture-wanted", () => {
  if (picker.file) window.dispatchEvent(new CustomEvent("cnnviz:picture", { detail: { file: picker.file } }));
});
const strip = createLayerStrip($("layer-strip"), {
  onPick(name) {
    focusDetail = true;
    if (!state.set({ layer: name, channel: name === state.get("layer") ? state.get("channel") : 0 })
      .has("layer")) openLayer();
  },
});
const detail = createLayerDetail(
  {
    section: $("layer-detail"), heading: $("detail-heading"), facts: $("detail-facts"),
    atlas: $("atlas-canvas"), channel: $("channel-canvas"), caption: $("channel-caption"),
    readout: $("readout"), legendBar: $("legend-bar"), legendLow: $("legend-low"),
    legendHigh: $("legend-high"), overflow: $("detail-overflow"),
  },
  { onChannel: (channel) => state.set({ channel }) },
);

const units = bindUnits({ state, detail, channelCanvas: $("channel-canvas"), atlasCanvas: $("atlas-canvas") });

// Each pixel of the enlarged channel is a unit of the layer: a click offers the link to that
// unit's receptive field on /receptive-field (same model, picture and trained weights).
const fieldLink = document.createElement("a");
fieldLink.id = "field-link";
const fieldNote = document.createElement("p");
fieldNote.hidden = true;
fieldNote.append(fieldLink);
$("readout").after(fieldNote);
$("channel-canvas").addEventListener("click", (event) => {
  const layer = answer?.layers.find((item) => item.name === state.get("layer")) ?? answer?.layers[0];
  if (!layer || layer.units || answer.mode !== "learned") return;
  const [height, width] = layer.tile;
  const canvas = event.currentTarget;
  const y = Math.min(height - 1, Math.floor((event.offsetY / canvas.clientHeight) * height));
  const x = Math.min(width - 1, Math.floor((event.offsetX / canvas.clientWidth) * width));
  const sample = state.get("sample");
  const query = new URLSearchParams({
    model: answer.model, sample: sample || DEFAULT_SAMPLE, weights: "trained", layer: layer.name, y, x,
  });
  if (answer.weights?.run) query.set("run", answer.weights.run);
  fieldLink.href = `/receptive-field?${query}`;
  fieldLink.textContent = t(sample ? "rf_link.unit" : "rf_link.unit_sample",
    { layer: layer.name, row: y, col: x });
  fieldNote.hidden = false;
});

// --- what the answer says ------------------------------------------------------------------
function weightsText(body) {
  if (body.mode === "handcrafted") return t("features.weights.handcrafted");
  const weights = body.weights;
  if (weights.source === "imagenet") {
    return t("features.weights.imagenet", {
      file: weights.installed.original_file,
      top1: formatNumber(weights.installed.top1, 1),
      top5: formatNumber(weights.installed.top5, 1),
    });
  }
  if (weights.source === "imported") {
    return t("features.weights.imported", { file: weights.installed.original_file });
  }
  if (weights.source === "initialisation") return t("features.weights.initialisation");
  if (weights.source === "uploaded") return t("features.weights.uploaded", { file: weights.file });
  const score = weights.metric === "accuracy"
    ? t("features.weights.accuracy", { value: formatNumber(weights.score * 100, 1) })
    : t("features.weights.mse", { value: formatNumber(weights.score, 4) });
  if (weights.run) {
    const run = runPicker?.runs.find((item) => item.id === weights.run);
    return t("features.weights.run", {
      label: run?.label ?? weights.run, file: weights.file, epochs: weights.epochs, score,
    });
  }
  return t("features.weights.trained", {
    dataset: t(`features.dataset.${weights.dataset}`), epochs: weights.epochs, score,
  });
}

function renderSteps(body) {
  $("step-strip").replaceChildren(...body.preprocessing.map((step) => {
    const item = document.createElement("li");
    item.className = "step";
    const image = document.createElement("img");
    image.src = step.url;
    image.alt = t(`features.step.${step.step}`);
    image.className = "step-image";
    const caption = document.createElement("span");
    caption.className = "step-caption";
    caption.textContent = `${t(`features.step.${step.step}`)} · ${shapeText(step.size)}`;
    item.append(image, caption);
    return item;
  }));
}

function renderPredictions(body) {
  const list = $("prediction-list");
  const note = $("prediction-note");
  if (!body.predictions) {
    list.replaceChildren();
    note.textContent = t(noPredictionsKey(body));
    note.hidden = false;
    return;
  }
  note.hidden = true;
  list.replaceChildren(...body.predictions.map((prediction) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.className = "prediction-label";
    // ImageNet weights name their classes in the page's language
    label.textContent = prediction.names?.[language()] ?? prediction.label;
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = prediction.prob ?? 0; // null: NaN logits (a model whose values overflowed)
    meter.setAttribute("aria-label", label.textContent);
    const value = document.createElement("span");
    value.className = "prediction-value";
    value.textContent = formatPercent(prediction.prob, 1);
    item.append(label, meter, value);
    return item;
  }));
}

function renderFilters(body) {
  const image = $("filters-image");
  image.hidden = !body.filters_url;
  if (body.filters_url) {
    image.src = body.filters_url;
    image.alt = t(body.mode === "handcrafted" ? "features.filters.designed" : "features.filters.learned");
  }
  $("filters-note").textContent = body.filters_url
    ? t(body.mode === "handcrafted" ? "features.filters.designed" : "features.filters.learned")
    : t("features.filters.none");
}

function openLayer() {
  if (!answer || pending) return;
  const name = state.get("layer");
  const layer = answer.layers.find((item) => item.name === name) ?? answer.layers[0];
  if (!layer) return detail.hide();
  strip.select(layer.name);
  layerShown = detail.show(layer, state.get("colormap"), state.get("channel"), colormaps[state.get("colormap")],
    inlinePictures())
    .then((shown) => {
      // A superseded show (the user picked another layer before this one was drawn) must not
      // use up the focus move: the layer the user picked is still to come.
      if (!shown || !focusDetail) return;
      focusDetail = false;
      $("layer-detail").scrollIntoView({ block: "start" });
      $("atlas-canvas").focus({ preventScroll: true });
    })
    .catch(() => showErrors(form, new Error(t("features.error.image"))));
}

/** The answer's pictures at hand (POST /api/features/live), while they are in the colours
 * shown: a colormap change after it recolours through the URLs. */
function inlinePictures() {
  return answer.colormap === state.get("colormap") ? answer.inline : null;
}

function render() {
  $("weights-note").textContent = weightsText(answer);
  $("status").textContent = t(answer.cached ? "features.status.cached" : "features.status.done", {
    layers: answer.layers.length,
    shape: shapeText(answer.input.shape),
  });
  // Mid-stroke the preprocessing steps and the filters (the same for every drawing) wait for
  // the pen to lift: fewer pictures to fetch, so the maps keep up with the pen.
  if (!stroking) renderSteps(answer);
  renderPredictions(answer);
  renderFamiliarity(answer);
  if (!stroking) renderFilters(answer);
  strip.render(answer.layers, state.get("colormap"), state.get("layer"), inlinePictures()?.thumbs);
  openLayer();
  units.refresh(answer);
}

/** Another model: nothing of the previous one's layers, channels, predictions, filters or
 * familiarity stays on screen while the new one's maps are computed. */
function clearModel() {
  answer = null;
  detail.hide();
  strip.render([], state.get("colormap"), "");
  $("prediction-list").replaceChildren();
  $("prediction-note").hidden = true;
  $("filters-image").hidden = true;
  $("filters-note").textContent = "";
  renderFamiliarity({});
}

// --- requests --------------------------------------------------------------------------------
function requestFields() {
  const values = state.values();
  const fields = { model: values.model, mode: values.mode, normalise: values.normalise,
                   colormap: values.colormap };
  if (!picker.file) fields.sample = values.sample || DEFAULT_SAMPLE;
  if (values.weights === "run" && values.run && values.mode === "learned") fields.run = values.run;
  return fields;
}

function refresh() {
  refreshing = request();
  return refreshing;
}

async function request() {
  clearErrors(form);
  results.setAttribute("aria-busy", "true");
  $("status").textContent = t("features.status.working");
  pending = true;
  try {
    // Mid-stroke: one request per update, its pictures inline (and on the live quota)
    const open = { layer: state.get("layer"), channel: state.get("channel") };
    const body = await latest((signal) => (stroking
      ? postLiveFeatures(requestFields(), picker.file, open, { signal })
      : postFeatures(requestFields(), picker.file, { signal })));
    pending = false;
    answer = body;
    render();
  } catch (error) {
    if (isAbort(error)) return; // a newer request took over; it clears `pending`
    pending = false;
    showErrors(form, error);
    $("status").textContent = t("features.status.failed");
  }
  results.setAttribute("aria-busy", "false");
}

// --- a drawing as the picture, sent while the stroke is drawn (features/draw_input.js) --------
/** The drawing becomes the picture (no "cnnviz:picture": a class session is not sent every
 * stroke); resolves once its prediction, the layer strip's maps and the open layer are on
 * screen. `midStroke`: the pen is still down (steps and filters are left as they are). */
async function showDrawing(file, fields = {}, midStroke = false) {
  stroking = midStroke;
  picker.holdFile(file);
  picker.setSamples(samples, "");
  const changed = state.set({ sample: "", ...fields });
  if (![...changed].some((name) => REQUEST_FIELDS.has(name))) refresh();
  await refreshing;
  await layerShown;
  await Promise.all(shownThumbnails().map((image) => image.decode().catch(() => {})));
}

/** The layer strip's thumbnails on screen now (the others load lazily, when scrolled to). */
function shownThumbnails() {
  const strip = $("layer-strip");
  const view = strip.getBoundingClientRect();
  return [...strip.querySelectorAll("img")].filter((image) => {
    const box = image.getBoundingClientRect();
    return box.right > view.left && box.left < view.right && box.bottom > 0
      && box.top < window.innerHeight;
  });
}
bindDrawing(
  { open: $("draw-open"), panel: $("draw-panel"), canvas: $("draw-pad"), clear: $("draw-clear") },
  {
    // LeNet-5 with its bundled weights was trained on handwritten digits (MNIST): white on black
    onOpen: (file) => showDrawing(file, state.get("model") === "lenet5" ? {}
      : { model: "lenet5", mode: "learned", weights: "bundled", run: "", layer: "", channel: 0 }),
    send: (file, midStroke) => showDrawing(file, {}, midStroke),
  },
);

// Before bindControls' own listener: choosing a sample drops the uploaded file first, so the
// request that the state change starts already sends the sample.
$("c-sample").addEventListener("change", () => {
  picker.clearFile();
  state.set({ heldout: -1 });
  picker.setSamples(samples, $("c-sample").value);
});
bindControls(form, state, {
  onUserChange(name) {
    if (name === "sample" || name === "model" || name === "mode") {
      state.set({ layer: "", channel: 0, unit: [], xlayer: "", cls: -1 });
    }
    if (runPicker) settleWeights(name);
  },
});

// A run fixes its model: keep {weights, run, model} consistent, then show what applies.
function settleWeights(name) {
  const fix = runPicker.reconcile(state.values(), name);
  if (Object.keys(fix).length) state.set({ ...fix, ...(fix.model ? { layer: "", channel: 0 } : {}) });
  runPicker.show(state.values());
}

state.subscribe((changed) => {
  if (changed.has("model")) clearModel();
  if (changed.has("sample")) takeTeacherPicture();
  if ([...changed].some((name) => REQUEST_FIELDS.has(name))) return refresh();
  if (changed.has("colormap") && answer) return render();
  if (changed.has("layer")) openLayer();
});

// A held-out picture of a run, opened from /train's confusion matrix with that run's weights.
const heldOutWanted = () => state.get("heldout") >= 0 && state.get("weights") === "run" && state.get("run") !== "";

async function takeHeldOutPicture() {
  try {
    const response = await fetch(`/api/runs/${encodeURIComponent(state.get("run"))}/heldout/${state.get("heldout")}.png`);
    if (!response.ok) throw new Error(response.statusText);
    const name = t("features.heldout_picture", { index: state.get("heldout") });
    picker.useFile(new File([await response.blob()], name, { type: "image/png" }));
    return true;
  } catch {
    state.set({ heldout: -1, sample: DEFAULT_SAMPLE });
    picker.setSamples(samples, DEFAULT_SAMPLE);
    return false;
  }
}

async function start() {
  try {
    const [modelNames, sampleList, maps] = await Promise.all([
      fillModelPicker($("c-model")), getJSON("/api/features/samples"),
      getJSON("/api/features/colormaps"),
    ]);
    samples = sampleList;
    colormaps = maps;
    if (!modelNames.includes(state.get("model"))) state.set({ model: "tinyvgg" });
    $("c-model").value = state.get("model");
    // An unknown sample falls back to the default; "" (an uploaded picture) too, except on a
    // class follower's page, where it is the teacher's picture: coming, or missing (the note).
    const following = (root.dataset.follow || heldOutWanted()) && state.get("sample") === "";
    if (!following && !samples.some((sample) => sample.name === state.get("sample"))) {
      state.set({ sample: DEFAULT_SAMPLE });
    }
    picker.setSamples(samples, state.get("sample"));
    const runs = await loadRuns(new Set(modelNames)).catch(() => []);
    runPicker = createRunPicker({ weights: $("c-weights"), run: $("c-run"), note: $("run-note") },
      runs);
    settleWeights(null);
  } catch (error) {
    showErrors(form, error);
    return;
  }
  started = true;
  if (!(heldOutWanted() && (await takeHeldOutPicture()))) refresh();
  takeTeacherPicture(); // a class session's picture that arrived while the page started
  showWeightsCatalogue($("catalogue-list"), $("catalogue-note")).catch(() => {
    $("catalogue-list").replaceChildren();
  });
}

bindModelUpload($("model-upload-form"), $("model-upload-status"), {
  async onUploaded(model) {
    await fillModelPicker($("c-model"));
    state.set({ model: model.model, mode: "learned", weights: "bundled", run: "", layer: "",
      channel: 0 });
    $("c-model").value = model.model;
  },
});

start();
