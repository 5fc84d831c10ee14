// The softmax-and-loss explorer (/loss): drag a logit (or a probability) and watch the softmax,
// every term of the loss, its total and the gradient with respect to each logit change; all
// numbers come from /api/functions/loss, one request per change (the newest wins).

import { t } from "./i18n.js";
import { clearErrors, coalesced, isAbort, latestOnly, postJSON, showErrors } from "./api.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { createBarChart } from "./chart.js";
import { formatExact } from "./format.js";
import { LOGIT_LIMIT, LOSS_STATE, lossRequest, resized, scoreCount } from "./loss_state.js";
import { markRedrawn } from "./redrawn.js";

const $ = (id) => document.getElementById(id);
const state = createState(LOSS_STATE);
const form = $("loss-controls");
const latest = latestOnly();
const chart = createBarChart($("probs-chart"), { label: t("loss.chart.label"), max: 1, yLabel: t("loss.chart.y") });

const num = (value, digits = 4) => (value === null ? "–" : formatExact(value, digits));

function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

// --- the score sliders --------------------------------------------------------------------------
function usesProbs(values) {
  return values.mode === "probs" && values.kind !== "binary_cross_entropy";
}

function renderSliders() {
  const values = state.values();
  const probs = usesProbs(values);
  const list = resized(probs ? values.probs : values.logits, scoreCount(values), 0);
  const root = $("scores");
  root.replaceChildren(
    ...list.map((value, i) => {
      const row = document.createElement("div");
      row.className = "logit-slider";
      const id = `score-${i}`;
      const label = cell("label", probs ? `p${sub(i)}` : `z${sub(i)}`);
      label.htmlFor = id;
      const slider = Object.assign(document.createElement("input"), {
        type: "range", id, min: probs ? "0" : String(-LOGIT_LIMIT), max: probs ? "1" : String(LOGIT_LIMIT),
        step: probs ? "0.01" : "0.1", value: String(value),
      });
      slider.dataset.index = String(i);
      const shown = cell("output", num(value, 2));
      shown.htmlFor = id;
      row.append(label, slider, shown);
      return row;
    }),
  );
  $("normalise").hidden = !probs;
  $("scores-title").textContent = t(probs ? "loss.scores.probs" : "loss.scores.logits");
  showSum(values);
}

const sub = (i) => String(i).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[d]);

function showSum(values) {
  const probs = resized(values.probs, scoreCount(values), 0);
  const sum = probs.reduce((a, b) => a + b, 0);
  $("probs-sum").textContent = usesProbs(values) ? t("loss.scores.sum", { sum: formatExact(sum, 4) }) : "";
}

$("scores").addEventListener("input", (event) => {
  const i = Number(event.target.dataset.index);
  if (!Number.isInteger(i)) return;
  const values = state.values();
  const field = usesProbs(values) ? "probs" : "logits";
  const list = resized(values[field], scoreCount(values), 0);
  list[i] = Number(event.target.value);
  state.set({ [field]: list });
  event.target.nextElementSibling.textContent = num(list[i], 2);
  showSum(state.values());
});

$("normalise").addEventListener("click", () => {
  const values = state.values();
  const probs = resized(values.probs, scoreCount(values), 0);
  const sum = probs.reduce((a, b) => a + b, 0) || 1;
  // Rounded to the URL's 4 decimals, the largest takes up the rounding so the sum stays exactly 1.
  const scaled = probs.map((p) => Math.round((p / sum) * 10000) / 10000);
  const largest = scaled.indexOf(Math.max(...scaled));
  const others = scaled.reduce((total, p, i) => (i === largest ? total : total + p), 0);
  scaled[largest] = Math.round((1 - others) * 10000) / 10000;
  state.set({ probs: scaled });
  renderSliders();
});

function fillTargets() {
  const values = state.values();
  const classes = values.kind === "binary_cross_entropy" ? 2 : values.classes;
  const select = form.elements.namedItem("target");
  select.replaceChildren(
    ...Array.from({ length: classes }, (_, i) => Object.assign(document.createElement("option"), {
      value: String(i), textContent: t("loss.class", { n: i }),
    })),
  );
  if (values.target >= classes) state.set({ target: classes - 1 });
  select.value = String(state.get("target"));
}

function updateAvailability() {
  const values = state.values();
  const binary = values.kind === "binary_cross_entropy";
  form.elements.namedItem("classes").disabled = binary;
  form.elements.namedItem("mode").disabled = binary;
  for (const name of ["gamma", "alpha"]) form.elements.namedItem(name).disabled = values.kind !== "focal";
  $("smoothing-value").textContent = String(values.smoothing);
  $("temperature-value").textContent = String(values.temperature);
  $("gamma-value").textContent = String(values.gamma);
}

// --- the answer ---------------------------------------------------------------------------------
function renderTerms(answer, values) {
  const binary = answer.kind === "binary_cross_entropy";
  const rows = answer.probs.map((p, i) => {
    const row = document.createElement("tr");
    row.dataset.class = String(i);
    if (answer.target[i] > 0 && answer.target[i] === Math.max(...answer.target)) row.classList.add("is-target");
    const logit = binary ? (i === 1 ? answer.logits[0] : null) : answer.logits[i];
    const grad = binary ? (i === 1 ? answer.grad[0] : null) : answer.grad[i];
    row.append(cell("td", t("loss.class", { n: i })), cell("td", num(logit)), cell("td", num(p)),
      cell("td", num(answer.target[i])), cell("td", num(answer.terms[i])), cell("td", num(grad)));
    row.children[4].dataset.value = String(answer.terms[i]);
    return row;
  });
  $("terms-body").replaceChildren(...rows);
  $("terms-total").textContent = num(answer.loss);
  const loss = $("loss-value");
  loss.textContent = num(answer.loss);
  loss.dataset.value = String(answer.loss);
  const base = values.base === "e" ? "ln" : `log${sub(Number(values.base))}`;
  const formula = answer.kind === "focal" && answer.alpha === null ? "focal_no_alpha" : answer.kind;
  $("loss-formula").textContent = t(`loss.formula.${formula}`, { log: base, T: values.temperature });
  renderSoftmax(answer, values);
}

/** Softmax with its numbers, the lines the lesson's worked answer shows (from the server). */
function renderSoftmax(answer, values) {
  const lines = answer.softmax_worked;
  $("softmax-worked").hidden = !lines;
  if (!lines) return;
  $("softmax-heading").textContent = t("loss.softmax.heading", { T: values.temperature });
  $("softmax-lines").replaceChildren(...lines.map((line) => cell("p", line, "softmax-line")));
}

function renderComparison(answer) {
  const section = $("comparison");
  section.hidden = !answer.comparison;
  if (!answer.comparison) return;
  $("comparison-body").replaceChildren(
    ...answer.comparison.map((example) => {
      const row = document.createElement("tr");
      row.dataset.example = example.example;
      row.append(cell("td", t(`loss.example.${example.example}`)), cell("td", num(example.p_t)),
        cell("td", num(example.cross_entropy)), cell("td", num(example.focal)),
        cell("td", example.ratio === null ? "∞" : `${num(example.ratio, 1)}×`));
      return row;
    }),
  );
}

async function refresh() {
  const values = state.values();
  let answer;
  try {
    answer = await latest((signal) => postJSON("/api/functions/loss", lossRequest(values), { signal }));
  } catch (error) {
    if (isAbort(error)) return;
    showErrors(form.closest(".functions-layout"), error);
    $("results").classList.add("is-stale");
    return;
  }
  clearErrors(form.closest(".functions-layout"));
  $("results").classList.remove("is-stale");
  const labels = answer.probs.map((_, i) => String(i));
  chart.update({
    labels,
    series: [{ name: "p", values: answer.probs }, { name: "y", values: answer.target }],
    marked: answer.target.map((y, i) => (y === Math.max(...answer.target) ? i : -1)).filter((i) => i >= 0),
  });
  renderTerms(answer, values);
  renderComparison(answer);
  document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1); // tests wait on this
  markRedrawn("loss");
}

const schedule = coalesced(() => refresh()); // at once, one request in flight, the newest drawn last

for (const slider of form.querySelectorAll('input[type="range"]')) {
  slider.addEventListener("input", () => state.set({ [slider.name]: Number(slider.value) }));
}

state.subscribe((changed) => {
  updateAvailability();
  if (changed.has("classes") || changed.has("kind")) fillTargets();
  if (["classes", "kind", "mode"].some((name) => changed.has(name))) renderSliders();
  schedule();
});

async function start() {
  fillTargets();
  bindControls(form, state);
  renderSliders();
  updateAvailability();
  await refresh();
  document.body.dataset.ready = "true";
}

start();
