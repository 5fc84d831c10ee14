// One training run on screen, rebuilt from its event stream (start, step, epoch, checkpoint,
// paused, resumed, diverged, early_stop, end, status): progress and figures, loss and accuracy
// charts, the first layer's filters epoch by epoch, per-layer gradient and weight norms, the
// confusion matrix and the misclassified images. Drawing is throttled: a run sends up to
// hundreds of steps a second, the screen needs a few frames a second.

import { language, t } from "./i18n.js";
import { createBarChart } from "./chart.js";
import { createRunChart } from "./train/run_chart.js";
import { addGridFigure } from "./grid.js";
import { formatCount, formatNumber, formatPercent } from "./format.js";

const MAX_POINTS = 400; // chart points per line: steps are averaged into this many buckets
const DRAW_INTERVAL_MS = 250;
const FINISHED = new Set(["completed", "stopped", "diverged", "stalled", "failed", "interrupted"]);
const END_STATUS = { completed: "completed", early_stop: "completed", stopped: "stopped", diverged: "diverged", stalled: "stalled", failed: "failed", interrupted: "interrupted" };

export const isFinished = (status) => FINISHED.has(status);

/**
 * Average `points` ([{x, y}], x ascending, x ≥ 1) over buckets of equal width so at most
 * `limit` remain; returns {width, xs, mean(bucket)}. Bucket b covers x in ((b)·w, (b+1)·w].
 */
export function buckets(points, total, limit = MAX_POINTS) {
  const width = Math.max(1, Math.ceil(total / limit));
  const count = Math.max(1, Math.ceil(total / width));
  const sums = new Float64Array(count);
  const counts = new Uint32Array(count);
  for (const { x, y } of points) {
    if (!Number.isFinite(y)) continue;
    const b = Math.min(count - 1, Math.floor((x - 1) / width));
    sums[b] += y;
    counts[b] += 1;
  }
  return {
    width,
    xs: [0, ...Array.from({ length: count }, (_, b) => Math.min(total, (b + 1) * width))],
    index: (x) => 1 + Math.min(count - 1, Math.floor((x - 1) / width)),
    mean: (b) => (counts[b - 1] ? sums[b - 1] / counts[b - 1] : NaN),
  };
}

function image(png, alt, className) {
  const node = document.createElement("img");
  node.src = `data:image/png;base64,${png}`;
  node.alt = alt;
  node.className = className;
  return node;
}

function emptyRun() {
  return {
    id: "", status: "none", steps: [], epochs: [], totalSteps: 0, epochsPlanned: 0, classes: [],
    model: null, device: "", latest: null, norms: null, error: null, reason: null, lastTime: null,
    explanation: null, // why a diverged or stalled run stopped: lines in the page's language
  };
}

export function createRunView(elements) {
  let run = emptyRun();
  let drawTimer = null;
  let confusion = null; // { grid, size, matrix }
  const chartOptions = (labelKey, yKey, extra = {}) => ({ label: t(labelKey), xLabel: t("train.axis.step"), yLabel: t(yKey), ...extra });
  const lossChart = createRunChart(elements.loss, chartOptions("train.chart.loss", "train.axis.loss", { onZoom: elements.onZoom }));
  const accuracyChart = createRunChart(elements.accuracy, chartOptions("train.chart.accuracy", "train.axis.accuracy", { onZoom: elements.onZoom }));
  const gradChart = createBarChart(elements.grads, {
    label: t("train.grads.heading"), log: true, xLabel: t("train.axis.layer"), yLabel: t("train.axis.norm"),
  });

  function reset(id) {
    run = { ...emptyRun(), id };
    confusion = null;
    for (const key of ["filters", "filterHistory", "confusion", "wrong"]) elements[key].replaceChildren();
    for (const chart of [elements.loss, elements.accuracy, elements.grads]) {
      chart.dataset.points = "0";
      chart.classList.add("is-empty"); // the last run's lines stay hidden until this one draws
    }
    elements.panel.dataset.steps = "0";
    elements.panel.dataset.epochs = "0";
    elements.panel.dataset.lastEvent = "0";
    draw();
  }

  function setStatus(status) {
    run.status = status;
  }

  function apply(event, eventId) {
    elements.panel.dataset.lastEvent = String(eventId);
    switch (event.kind) {
      case "status":
        setStatus(event.status);
        break;
      case "start":
        setStatus("running");
        run.totalSteps = event.total_steps;
        run.epochsPlanned = event.config.epochs;
        run.classes = event.dataset.names?.[language()] ?? event.dataset.class_names;
        run.model = event.model;
        run.device = event.device;
        break;
      case "step":
        run.steps.push({ step: event.step, loss: event.loss, accuracy: event.accuracy });
        run.latest = event;
        if (event.grad_norms) run.norms = { grad: event.grad_norms, weight: event.weight_norms };
        break;
      case "epoch":
        run.epochs.push(event);
        if (Object.keys(event.grad_norms || {}).length) run.norms = { grad: event.grad_norms, weight: event.weight_norms };
        showEpoch(event);
        break;
      case "checkpoint": // written after its epoch: the held-out split can be read from it
        elements.onCheckpoint?.(event);
        break;
      case "paused":
        setStatus("paused");
        break;
      case "resumed":
        setStatus("running");
        break;
      case "diverged":
        // the server wrote the run's own diagnosis out in both languages (app/runs/explain.py)
        run.explanation = event.explanation?.[language()] ?? [event.message];
        break;
      case "end":
        setStatus(END_STATUS[event.reason] || "failed");
        run.reason = event.reason;
        if (event.error) run.error = event.error;
        break;
      default:
        break;
    }
    run.lastTime = event.time ?? run.lastTime;
    scheduleDraw();
  }

  function showEpoch(event) {
    const alt = t("train.filters.alt", { epoch: event.epoch });
    if (event.filters) {
      elements.filters.replaceChildren(image(event.filters.png, alt, "filters-now"));
      const item = document.createElement("li");
      const caption = document.createElement("span");
      caption.textContent = t("train.filters.epoch", { epoch: event.epoch });
      item.append(image(event.filters.png, alt, "filters-then"), caption);
      elements.filterHistory.append(item);
    } else if (!elements.filters.childElementCount) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = t("train.filters.none");
      elements.filters.append(note);
    }
    showConfusion(event.confusion);
    elements.wrong.replaceChildren(...event.misclassified.map((wrong) => {
      const item = document.createElement("li");
      const caption = document.createElement("span");
      const [truth, guess] = [run.classes[wrong.true] ?? wrong.true, run.classes[wrong.predicted] ?? wrong.predicted];
      caption.textContent = t("train.wrong.caption", { truth, guess, confidence: formatPercent(wrong.confidence) });
      item.append(image(wrong.png, caption.textContent, "wrong-image"), caption);
      return item;
    }));
  }

  function showConfusion(matrix) {
    const size = matrix.length;
    if (confusion && confusion.size === size) {
      confusion.matrix = matrix;
      confusion.grid.update();
    } else {
      elements.confusion.replaceChildren();
      confusion = { size, matrix, grid: null };
      confusion.grid = addGridFigure(elements.confusion, t("train.confusion.caption"), {
        rows: size, cols: size, value: (r, c) => confusion.matrix[r][c], label: t("train.confusion.heading"),
        onActivate: (r, c) => elements.onCell?.(r, c), // its held-out pictures (train/heldout_view.js)
      });
    }
    const named = run.classes.some((name, i) => name !== String(i));
    elements.confusionNote.textContent = named
      ? `${t("train.confusion.hint")} ${run.classes.map((name, i) => `${i} = ${name}`).join(", ")}`
      : t("train.confusion.hint");
    elements.confusion.dataset.matrix = JSON.stringify(matrix);
  }

  function scheduleDraw() {
    if (drawTimer === null) drawTimer = setTimeout(draw, DRAW_INTERVAL_MS);
  }

  function drawCharts() {
    const total = Math.max(run.totalSteps, run.steps.at(-1)?.step ?? 0, 1);
    const grid = buckets([], total);
    const lossSteps = buckets(run.steps.map((s) => ({ x: s.step, y: s.loss })), total);
    const accSteps = buckets(run.steps.map((s) => ({ x: s.step, y: s.accuracy })), total);
    const valLoss = new Array(grid.xs.length).fill(NaN);
    const valAccuracy = new Array(grid.xs.length).fill(NaN);
    for (const epoch of run.epochs) {
      valLoss[grid.index(epoch.step)] = epoch.val_loss ?? NaN;
      valAccuracy[grid.index(epoch.step)] = epoch.val_accuracy ?? NaN;
    }
    const series = (stats) => grid.xs.map((_, b) => (b === 0 ? NaN : stats.mean(b)));
    const lossValues = series(lossSteps);
    const drawable = (values) => values.some(Number.isFinite);
    if (drawable(lossValues) || drawable(valLoss)) {
      elements.loss.classList.remove("is-empty");
      elements.accuracy.classList.remove("is-empty");
      lossChart.update({ x: grid.xs, series: [{ name: t("train.legend.train"), values: lossValues }, { name: t("train.legend.val"), values: valLoss }] });
      accuracyChart.update({ x: grid.xs, series: [{ name: t("train.legend.train"), values: series(accSteps) }, { name: t("train.legend.val"), values: valAccuracy }] });
    }
    elements.loss.dataset.points = String(run.steps.length);
    elements.accuracy.dataset.points = String(run.epochs.length);
    if (run.norms) {
      const layers = Object.keys(run.norms.grad);
      gradChart.update({
        labels: layers,
        series: [
          { name: t("train.legend.grad"), values: layers.map((name) => run.norms.grad[name]) },
          { name: t("train.legend.weight"), values: layers.map((name) => run.norms.weight[name]) },
        ],
      });
      elements.grads.dataset.points = String(layers.length);
      elements.grads.classList.remove("is-empty");
    }
  }

  function facts() {
    if (!run.id) return t("train.run.empty");
    const latest = run.latest;
    const lastEpoch = run.epochs.at(-1);
    const parts = [];
    if (run.model) parts.push(t("train.facts.model", { params: formatCount(run.model.params), trainable: formatCount(run.model.trainable_params), device: run.device }));
    if (latest) {
      parts.push(t("train.facts.step", { step: latest.step, total: run.totalSteps, epoch: latest.epoch, epochs: run.epochsPlanned }));
      parts.push(t("train.facts.loss", { loss: formatNumber(latest.loss, 4), accuracy: formatNumber(100 * latest.accuracy, 1) }));
      if (latest.images_per_second) parts.push(t("train.facts.speed", { speed: formatCount(latest.images_per_second) }));
      if (!isFinished(run.status)) parts.push(t("train.facts.eta", { eta: Math.round(latest.eta_s) }));
    }
    if (lastEpoch) parts.push(t("train.facts.val", { accuracy: formatNumber(100 * lastEpoch.val_accuracy, 1), epoch: lastEpoch.epoch }));
    return parts.join(" · ") || t("train.run.waiting");
  }

  function showExplanation() {
    const box = elements.diagnosis;
    box.hidden = !run.explanation;
    box.dataset.status = run.explanation ? run.status : "";
    const lines = (run.explanation ?? []).map((text, index) => {
      const line = document.createElement("p");
      line.className = index === 0 ? "diagnosis-what" : "diagnosis-cause";
      line.textContent = text;
      return line;
    });
    box.querySelector(".diagnosis-lines").replaceChildren(...lines);
  }

  function draw() {
    drawTimer = null;
    elements.status.dataset.status = run.status;
    elements.panel.dataset.status = run.status;
    elements.status.textContent = t(`train.status.${run.status}`);
    elements.progress.value = run.totalSteps ? (run.steps.at(-1)?.step ?? 0) / run.totalSteps : 0;
    elements.facts.textContent = facts();
    elements.error.hidden = !run.error;
    elements.error.textContent = run.error || "";
    showExplanation();
    elements.panel.dataset.steps = String(run.steps.length);
    elements.panel.dataset.epochs = String(run.epochs.length);
    if (run.steps.length || run.epochs.length) drawCharts();
  }

  return {
    reset,
    apply,
    draw,
    setLog: (on) => lossChart.setLog(on),
    resetZoom: () => { lossChart.resetZoom(); accuracyChart.resetZoom(); },
    get status() { return run.status; },
    get id() { return run.id; },
    get model() { return run.model?.name ?? ""; },
    get classes() { return run.classes; }, // in the page's language where cnncore knows them
  };
}
