// The activation-function explorer (/activations): a function and its derivative (autograd, from
// the server) with a hover readout and live parameters, and beside it the vanishing-gradient
// experiment: the gradient norm reaching every layer of a deep stack, two activations compared.

import { t } from "./i18n.js";
import { clearErrors, coalesced, isAbort, latestOnly, postJSON, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { createBarChart, createLineChart } from "./chart.js";
import { formatExact } from "./format.js";
import { markRedrawn } from "./redrawn.js";

const FUNCTIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"];
const CURVE_FIELDS = new Set(["fn", "slope", "alpha", "start", "stop"]);
const DEEP_FIELDS = new Set(["deep", "compare", "depth", "width", "batch_norm", "init", "seed"]);
const PARAMETER_OF = { slope: "leaky_relu", alpha: "elu" }; // a parameter matters where its function is used
const POINTS = 601;

const ACTIVATION_STATE = [
  { name: "fn", type: "enum", values: FUNCTIONS, default: "sigmoid" },
  { name: "slope", type: "float", default: 0.1, min: 0, max: 1 },
  { name: "alpha", type: "float", default: 1, min: 0, max: 10 },
  { name: "start", type: "float", default: -6, min: -100, max: 100 },
  { name: "stop", type: "float", default: 6, min: -100, max: 100 },
  { name: "deep", type: "enum", values: FUNCTIONS, default: "sigmoid" },
  { name: "compare", type: "enum", values: [...FUNCTIONS, "none"], default: "relu" },
  { name: "depth", type: "int", default: 20, min: 1, max: 50 },
  { name: "width", type: "enum", values: ["16", "32", "64", "128"], default: "32" },
  { name: "batch_norm", type: "bool", default: false },
  { name: "init", type: "enum", values: ["kaiming", "xavier", "default"], default: "kaiming" },
  { name: "seed", type: "int", default: 0, min: 0, max: 999999 },
];

const $ = (id) => document.getElementById(id);
const state = createState(ACTIVATION_STATE);
const curveForm = $("curve-controls");
const deepForm = $("deep-controls");
const latestCurve = latestOnly();
const latestDeep = latestOnly();
let curve = null;

const lineChart = createLineChart($("curve-chart"), {
  label: t("act.chart.label"), xLabel: "x", yLabel: t("act.chart.y"), onHover: showReadout,
});
const barChart = createBarChart($("deep-chart"), {
  label: t("act.deep.chart"), log: true, xLabel: t("act.deep.layer"), yLabel: t("act.deep.norm"),
});

function showReadout(index) {
  const readout = $("readout");
  if (index === null || !curve) {
    readout.textContent = t("act.readout.hint");
    delete readout.dataset.x;
    return;
  }
  const [x, y, dy] = [curve.x[index], curve.y[index], curve.dy[index]];
  readout.textContent = t("act.readout", { x: formatExact(x, 3), y: formatExact(y, 4), dy: formatExact(dy, 4) });
  Object.assign(readout.dataset, { x: String(x), y: String(y), dy: String(dy) });
}

function curveRequest(values) {
  return { name: values.fn, slope: values.slope, alpha: values.alpha, start: values.start, stop: values.stop, points: POINTS };
}

function deepRequest(values, activation) {
  return {
    activation, depth: values.depth, width: Number(values.width), batch_norm: values.batch_norm,
    init: values.init, seed: values.seed, slope: values.slope, alpha: values.alpha,
  };
}

async function refreshCurve() {
  const values = state.values();
  try {
    curve = await latestCurve((signal) => postJSON("/api/functions/activation", curveRequest(values), { signal }));
  } catch (error) {
    if (!isAbort(error)) showErrors(curveForm, error);
    return;
  }
  clearErrors(curveForm);
  lineChart.update({ x: curve.x, series: [{ name: "f", values: curve.y }, { name: "df", values: curve.dy }] });
  showReadout(lineChart.index);
  $("formula").textContent = t(`act.formula.${values.fn}`);
  bump("curves");
  markRedrawn("curve");
}

async function refreshDeep() {
  const values = state.values();
  const names = values.compare === "none" || values.compare === values.deep ? [values.deep] : [values.deep, values.compare];
  let reports;
  try {
    reports = await latestDeep((signal) =>
      Promise.all(names.map((name) => postJSON("/api/functions/vanishing", deepRequest(values, name), { signal }))),
    );
  } catch (error) {
    if (!isAbort(error)) showErrors(deepForm, error);
    return;
  }
  clearErrors(deepForm);
  const labels = reports[0].layers.map((layer, i) => (layer.name === "classifier" ? t("act.deep.out") : String(i + 1)));
  barChart.update({
    labels,
    series: reports.map((report) => ({ name: report.activation, values: report.layers.map((l) => l.grad_norm) })),
  });
  $("deep-legend").replaceChildren(
    ...reports.map((report, k) => {
      const first = report.layers[0].grad_norm;
      const last = report.layers[report.layers.length - 1].grad_norm;
      const item = document.createElement("li");
      item.className = `legend-item series-${k}`;
      item.dataset.activation = report.activation;
      item.dataset.ratio = String(first / last);
      item.textContent = t("act.deep.ratio", { name: t(`act.fn.${report.activation}`), ratio: (first / last).toExponential(1) });
      return item;
    }),
  );
  bump("deeps");
  markRedrawn("deep");
}

/** Count finished redraws on the page (tests wait on these). */
function bump(name) {
  const root = document.body;
  root.dataset[name] = String(Number(root.dataset[name] || 0) + 1);
}

// at once, one request of each kind in flight, a dragged slider's newest value drawn last
const scheduleCurve = coalesced(() => refreshCurve());
const scheduleDeep = coalesced(() => refreshDeep());

function updateAvailability() {
  const fn = state.get("fn");
  const used = (name) => [fn, state.get("deep"), state.get("compare")].includes(name);
  curveForm.elements.namedItem("slope").disabled = !used("leaky_relu");
  curveForm.elements.namedItem("alpha").disabled = !used("elu");
  $("slope-value").textContent = String(state.get("slope"));
  $("alpha-value").textContent = String(state.get("alpha"));
  $("depth-value").textContent = String(state.get("depth"));
}

// Sliders act while they are dragged, not only when let go.
for (const slider of document.querySelectorAll('input[type="range"]')) {
  slider.addEventListener("input", () => state.set({ [slider.name]: Number(slider.value) }));
}

state.subscribe((changed) => {
  updateAvailability();
  if ([...changed].some((name) => CURVE_FIELDS.has(name))) scheduleCurve();
  const used = (fn) => state.get("deep") === fn || state.get("compare") === fn;
  const parameterUsed = Object.entries(PARAMETER_OF).some(([name, fn]) => changed.has(name) && used(fn));
  if (parameterUsed || [...changed].some((name) => DEEP_FIELDS.has(name))) scheduleDeep();
});

async function start() {
  bindControls(curveForm, state);
  bindControls(deepForm, state);
  updateAvailability();
  showReadout(null);
  await Promise.all([refreshCurve(), refreshDeep()]);
  document.body.dataset.ready = "true";
}

start();
