// The training page (/train): a config form with presets, one run followed live over Server-Sent
// Events (the browser's EventSource reconnects by itself, sending Last-Event-ID, and the server
// resumes right after it), pause / resume / stop, CSV and JSON export, the run list and an
// overlay comparison of several runs. Everything on screen is in the URL (train_state.js).

import { t } from "./i18n.js";
import { clearErrors, getJSON, postJSON, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { FIELD_ALIASES, FORM_FIELDS, PRESETS, TRAIN_STATE, parseCell, runRequest } from "./train_state.js";
import { createRunView, isFinished } from "./train_view.js";
import { createComparison, renderRunList, runName } from "./train_runs.js";
import { fillDataSelect, fillSourceSelect, loadDatasets, uploadedSources, weightSources } from "./train/data_picker.js";
import { createHeldOutView } from "./train/heldout_view.js";
import { createGradcheckView } from "./gradcheck_view.js";
import { controlHeaders, rememberRunToken, runToken } from "./train/run_tokens.js";
import { updateExportMenu } from "./train/export_menu.js";

const REFRESH_MS = 2000; // run list and comparison, while something is training
const $ = (id) => document.getElementById(id);
const state = createState(TRAIN_STATE);
const form = $("train-controls");
let runs = []; // GET /api/runs, newest first
let source = null; // EventSource of the run on screen
let pendingTransfer = null; // the transfer preset waits for its pre-training to finish
let refreshing = null;
let sources = { bundled: [], imagenet: [], uploaded: [] }; // weights a transfer run can start from

const view = createRunView({
  panel: $("run"), status: $("run-status"), progress: $("run-progress"), facts: $("run-facts"),
  error: $("run-error"), loss: $("loss-chart"), accuracy: $("accuracy-chart"), grads: $("grad-chart"),
  filters: $("filters"), filterHistory: $("filter-history"), confusion: $("confusion"),
  confusionNote: $("confusion-note"), wrong: $("wrong"), diagnosis: $("run-diagnosis"),
  onZoom: (zoomed) => { $("reset-zoom").disabled = !zoomed; },
  onCell: (r, c) => state.set({ cell: `${r}:${c}` }),
  onCheckpoint: () => heldOut.refresh(),
});
const heldOut = createHeldOutView({
  root: $("heldout"), note: $("heldout-note"), table: $("heldout-table"), cellBox: $("heldout-cell"),
  cellHeading: $("heldout-cell-heading"), pictures: $("heldout-pictures"), model: () => view.model,
  classNames: () => view.classes,
});
$("heldout-close").addEventListener("click", () => state.set({ cell: "" }));
const comparison = createComparison({
  root: $("compare"), accuracy: $("compare-accuracy"), loss: $("compare-loss"), legend: $("compare-legend"),
});

// --- the form ---------------------------------------------------------------------------------
const controls = bindControls(form, state, {
  onUserChange(name) {
    if (name === "preset") applyPreset(state.get("preset"));
    describePreset();
  },
});

function applyPreset(name) {
  const preset = PRESETS[name];
  if (preset.values) state.set(preset.values);
}

function describePreset() {
  const preset = PRESETS[state.get("preset")];
  const labels = [preset.pretrain, ...(preset.variants || [])].filter(Boolean).map((v) => t(v.label));
  $("preset-note").textContent = labels.length > 1 ? t("train.preset.runs", { runs: labels.join(" · ") }) : "";
}

// A transfer run keeps the architecture of the weights it starts from (cnncore/transfer.py): the
// model's controls then show that architecture, disabled, instead of offering choices the run
// would not use; the student's own choices come back when the source goes back to none.
const ARCHITECTURE = ["model", "activation", "bn", "dropout"];
let ownArchitecture = null; // the student's choices, kept while a source decides them

/** What a run from `from` trains: a finished run's config, or a weights file's model and recorded options. */
function sourceArchitecture(from) {
  const run = runs.find((r) => r.id === from);
  if (run) return run.config;
  return [...sources.bundled, ...sources.imagenet].find((s) => s.value === from)?.arch ?? null;
}

function showArchitectureSource() {
  const from = state.get("from");
  if (from && !ownArchitecture) ownArchitecture = Object.fromEntries(ARCHITECTURE.map((name) => [name, state.get(name)]));
  const arch = from ? sourceArchitecture(from) : null;
  if (arch) {
    const shown = { activation: arch.activation ?? "default", bn: Boolean(arch.batch_norm), dropout: arch.dropout ?? 0 };
    const offered = [...form.elements.namedItem("model").options].some((option) => option.value === arch.model);
    if (offered) shown.model = arch.model; // the select shows what will train
    const changed = Object.fromEntries(Object.entries(shown).filter(([name, value]) => state.get(name) !== value));
    if (Object.keys(changed).length) state.set(changed);
  } else if (!from && ownArchitecture) {
    state.set(ownArchitecture);
    ownArchitecture = null;
  }
  for (const name of ARCHITECTURE) form.elements.namedItem(name).disabled = Boolean(from);
  const decides = $("arch-from-hint");
  const width = arch?.width ? ` · ${t("train.from.width", { width: arch.width })}` : "";
  decides.textContent = from ? `${t("train.from.decides")}${width}` : "";
  decides.hidden = !from;
  const note = $("model-from-note");
  const chosen = form.elements.namedItem("from").selectedOptions[0];
  note.textContent = from ? t("train.from.keeps", { source: chosen?.value === from ? chosen.textContent : from }) : "";
  note.hidden = !from;
}

async function launch(values, variant) {
  const merged = { ...values, ...variant.patch };
  if (variant.label) merged.label = values.label ? `${values.label} · ${t(variant.label)}` : t(variant.label);
  const body = runRequest(merged);
  // An uploaded model: its owner token goes with the run, and the pictures are given its channels
  // (grey digits repeated to colour for a colour network, colour pictures made grey for a grey one).
  const uploaded = sources.uploaded.find((s) => s.value === merged.from);
  if (uploaded && [1, 3].includes(uploaded.channels)) body.data.channels = uploaded.channels;
  const headers = uploaded ? { "X-Model-Token": uploaded.token } : {};
  const created = await postJSON("/api/runs", body, { headers });
  rememberRunToken(created.id, created.owner_token);
  return created.id;
}

// Only the button starts training: Enter in a field commits its value, it does not launch runs.
form.addEventListener("submit", (event) => event.preventDefault());
$("start").addEventListener("click", async () => {
  clearErrors(form);
  const button = $("start");
  button.disabled = true;
  try {
    const values = state.values();
    const preset = PRESETS[values.preset];
    if (preset.pretrain) {
      const pretrain = await launch(values, preset.pretrain);
      const scratch = await launch(values, preset.variants[1]);
      pendingTransfer = { pretrain, values, variant: preset.variants[0] };
      state.set({ run: pretrain, compare: [pretrain, scratch] });
    } else {
      const ids = [];
      for (const variant of preset.variants || [{ label: null, patch: {} }]) ids.push(await launch(values, variant));
      state.set(ids.length > 1 ? { run: ids.at(-1), compare: ids } : { run: ids[0] });
    }
  } catch (error) {
    showErrors(form, error, FIELD_ALIASES);
  } finally {
    button.disabled = false;
    refreshRuns();
  }
});

/** Second stage of the transfer preset: fine-tune from the pre-training's final checkpoint. */
async function continueTransfer() {
  const pending = pendingTransfer;
  const pretrain = runs.find((run) => run.id === pending.pretrain);
  if (!pretrain || !isFinished(pretrain.status)) return;
  pendingTransfer = null;
  if (pretrain.status !== "completed") {
    showErrors(form, new Error(t("train.transfer.failed", { status: t(`train.status.${pretrain.status}`) })));
    return;
  }
  try {
    const values = { ...pending.values, from: pending.pretrain };
    const tuned = await launch(values, pending.variant);
    state.set({ run: tuned, compare: [...state.get("compare").filter((id) => id !== tuned), tuned] });
  } catch (error) {
    showErrors(form, error, FIELD_ALIASES);
  }
}

// --- the run on screen ------------------------------------------------------------------------
function follow(id) {
  if (source) source.close();
  source = null;
  view.reset(id);
  heldOut.reset(id); // the replayed checkpoint events fetch its held-out split
  heldOut.want(parseCell(state.get("cell")));
  updateRunControls();
  if (!id) return;
  source = new EventSource(`/api/runs/${id}/events`);
  source.onmessage = (message) => {
    view.apply(JSON.parse(message.data), Number(message.lastEventId));
    updateRunControls();
  };
  source.addEventListener("done", () => {
    source.close();
    source = null;
    view.draw();
    updateRunControls();
    refreshRuns();
  });
  source.onerror = () => {
    // Closed (not reconnecting) means the server refused: an unknown run id in the URL.
    if (source && source.readyState === EventSource.CLOSED) {
      $("run-error").textContent = t("train.run.unknown", { run: id });
      $("run-error").hidden = false;
    }
  };
}

function updateRunControls() {
  const id = state.get("run");
  const status = view.status;
  const record = runs.find((run) => run.id === id);
  // A terminal's run is controlled there; another browser's run by that browser only.
  const local = (!record || record.source !== "cli") && runToken(id) !== null;
  $("pause").disabled = !(local && status === "running");
  $("resume").disabled = !(local && status === "paused");
  $("stop").disabled = !(local && ["running", "paused", "queued"].includes(status));
  for (const [anchor, kind] of [[$("export-csv"), "csv"], [$("export-json"), "json"]]) {
    anchor.hidden = !id;
    if (id) {
      anchor.href = `/api/runs/${id}/metrics.${kind}`;
      anchor.download = `run-${id}-metrics.${kind}`;
    }
  }
  updateExportMenu($("export-model"), record);
  // a run on a student's own dataset: its live prediction is on /teach, beside that dataset
  const own = record?.config?.data?.name === "user" ? record.config.data.dataset : null;
  $("teach-link-line").hidden = !own;
  if (own) $("teach-link").href = `/teach?${new URLSearchParams({ lang: document.documentElement.lang, dataset: own })}`;
  $("run-title").textContent = record ? runName(record, runs) : id;
  $("run-title").title = id;
}

for (const action of ["pause", "resume", "stop"]) {
  $(action).addEventListener("click", async () => {
    const id = state.get("run");
    try {
      await postJSON(`/api/runs/${id}/${action}`, undefined, { headers: controlHeaders(id) });
    } catch (error) {
      $("run-error").textContent = error.message;
      $("run-error").hidden = false;
    }
  });
}

// --- run list and comparison ------------------------------------------------------------------
function drawRunList() {
  renderRunList($("runs-body"), runs, {
    current: state.get("run"), compare: state.get("compare"),
    onOpen: (id) => state.set({ run: id }), onCompare: toggleCompare,
  });
}

function toggleCompare(id, on) {
  const others = state.get("compare").filter((other) => other !== id);
  state.set({ compare: on ? [...others, id] : others });
}

let comparisons = 0; // latest wins: an older, slower answer never replaces a newer one
async function refreshComparison() {
  const ticket = ++comparisons;
  const ids = state.get("compare");
  const metrics = await Promise.all(ids.map((id) => getJSON(`/api/runs/${id}/metrics.json`).catch(() => null)));
  const names = Object.fromEntries(runs.map((run) => [run.id, runName(run, runs)]));
  if (ticket === comparisons) comparison.update(metrics.filter(Boolean), names);
}

async function refreshRuns() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      runs = await getJSON("/api/runs?limit=100");
      drawRunList();
      fillSourceSelect(form.elements.namedItem("from"), runs, sources, state.get("from"));
      showArchitectureSource();
      updateRunControls();
      if (pendingTransfer) await continueTransfer();
      if (state.get("compare").length) await refreshComparison();
    } catch (error) {
      $("run-error").textContent = error.message;
      $("run-error").hidden = false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

setInterval(() => {
  const training = runs.some((run) => !isFinished(run.status));
  if ((training || pendingTransfer) && document.visibilityState === "visible") refreshRuns();
}, REFRESH_MS);

// --- chart tools: log scale (in the URL) and zoom ---------------------------------------------
function showLog() {
  $("log-scale").checked = state.get("log");
  view.setLog(state.get("log"));
  comparison.setLog(state.get("log"));
}
$("log-scale").addEventListener("change", () => state.set({ log: $("log-scale").checked }));
$("reset-zoom").addEventListener("click", () => view.resetZoom());

state.subscribe((changed) => {
  if (changed.has("log")) showLog();
  if (changed.has("run")) follow(state.get("run"));
  else if (changed.has("cell")) heldOut.want(parseCell(state.get("cell")));
  if (changed.has("run") || changed.has("compare")) drawRunList();
  if (changed.has("compare")) refreshComparison();
  if (changed.has("from")) showArchitectureSource();
  if ([...changed].some((name) => FORM_FIELDS.includes(name))) clearErrors(form);
});

describePreset();
controls.sync();
showLog();
follow(state.get("run"));
createGradcheckView($("gradcheck"));
// The pickers' choices: this browser's own datasets and the weights installed here.
const pickers = Promise.all([
  loadDatasets().then((listing) => fillDataSelect(form.elements.namedItem("data"), listing, state.get("data"))),
  getJSON("/api/weights").then((weights) => { sources = { ...sources, ...weightSources(weights) }; }),
  getJSON("/api/uploaded-models").then((models) => { sources = { ...sources, uploaded: uploadedSources(models) }; }),
]).catch((error) => {
  $("run-error").textContent = error.message;
  $("run-error").hidden = false;
});
Promise.all([pickers, refreshRuns()]).then(() => {
  fillSourceSelect(form.elements.namedItem("from"), runs, sources, state.get("from"));
  controls.sync();
  showArchitectureSource();
  document.body.dataset.ready = "true";
});
