// The run list (every run, from the web and from `cnnviz train`) and the overlay comparison of
// several runs: validation accuracy per epoch and training loss per step, one line per run.

import { t, language } from "./i18n.js";
import { createRunChart } from "./train/run_chart.js";
import { formatNumber, formatPercent } from "./format.js";
import { buckets } from "./train_view.js";

export const SERIES_COUNT = 8; // colours defined in train.css (series-0 … series-7)

function cell(...children) {
  const node = document.createElement("td");
  node.append(...children);
  return node;
}

/** A run's model in words: the zoo's name, or "uploaded model onnx_…" for a user's own file. */
export function modelName(model) {
  return /^(onnx|weights)_[0-9a-f]{16}$/.test(model) ? t("train.model.uploaded", { name: model }) : t(`train.model.${model}`);
}

/**
 * What a run is called on screen: its label, else a name read from its settings and its place
 * among the listed runs (oldest first), "LeNet-5 · 8×8 digits · lr 0.001 · 3 epochs · #4",
 * instead of a hex id.
 */
export function runName(run, runs = [run]) {
  if (run.label) return run.label;
  const order = [...runs].sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  return t("train.run_name", {
    model: modelName(run.model), data: t(`train.data.${run.dataset}`),
    lr: run.config?.lr ?? "–", epochs: run.config?.epochs ?? "–", number: order.indexOf(run) + 1,
  });
}

/** Fill `tbody` with one row per run; `compare` ids have their box ticked, `current` is marked. */
export function renderRunList(tbody, runs, { current, compare, onOpen, onCompare }) {
  tbody.replaceChildren(...runs.map((run) => {
    const row = document.createElement("tr");
    row.dataset.run = run.id;
    row.dataset.status = run.status;
    if (run.id === current) row.setAttribute("aria-current", "true");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = compare.includes(run.id);
    box.setAttribute("aria-label", t("train.runs.compare_run", { run: runName(run, runs) }));
    box.addEventListener("change", () => onCompare(run.id, box.checked));
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link-button";
    open.textContent = runName(run, runs);
    open.title = run.id;
    open.addEventListener("click", () => onOpen(run.id));
    const status = document.createElement("span");
    status.className = "status-badge";
    status.dataset.status = run.status;
    status.textContent = t(`train.status.${run.status}`);
    if (run.source === "cli") status.title = t("train.runs.from_cli");
    const accuracy = run.summary.val_accuracy;
    const created = new Date(run.created_at * 1000).toLocaleString(language(), { dateStyle: "short", timeStyle: "short" });
    row.append(
      cell(box), cell(open), cell(modelName(run.model)), cell(t(`train.data.${run.dataset}`)), cell(status),
      cell(formatPercent(accuracy, 1, "–")), cell(created),
    );
    return row;
  }));
}

/** Overlay charts of several runs' metrics (GET /api/runs/{id}/metrics.json each). */
export function createComparison(elements) {
  const accuracy = createRunChart(elements.accuracy, {
    label: t("train.compare.val_accuracy"), xLabel: t("train.axis.epoch"), yLabel: t("train.axis.accuracy"),
  });
  const loss = createRunChart(elements.loss, {
    label: t("train.compare.loss"), xLabel: t("train.axis.step"), yLabel: t("train.axis.loss"),
  });

  function update(metrics, names = {}) {
    const nameOf = (m) => m.label || names[m.id] || m.id;
    elements.root.hidden = metrics.length === 0;
    elements.root.dataset.runs = String(metrics.length);
    if (metrics.length === 0) return;
    const epochs = Math.max(1, ...metrics.map((m) => m.epochs.length));
    const xsEpochs = Array.from({ length: epochs + 1 }, (_, i) => i);
    const total = Math.max(1, ...metrics.map((m) => m.steps.at(-1)?.step ?? 0));
    const grid = buckets([], total);
    const accuracySeries = metrics.map((m) => ({
      name: nameOf(m),
      values: xsEpochs.map((e) => (e === 0 ? NaN : m.epochs[e - 1]?.val_accuracy ?? NaN)),
    }));
    const lossSeries = metrics.map((m) => {
      const stats = buckets(m.steps.map((s) => ({ x: s.step, y: s.loss })), total);
      return { name: nameOf(m), values: grid.xs.map((_, b) => (b === 0 ? NaN : stats.mean(b))) };
    });
    const any = (series) => series.some((s) => s.values.some(Number.isFinite));
    if (any(accuracySeries)) accuracy.update({ x: xsEpochs, series: accuracySeries });
    if (any(lossSeries)) loss.update({ x: grid.xs, series: lossSeries });
    elements.legend.replaceChildren(...metrics.map((m, k) => {
      const item = document.createElement("li");
      item.className = `legend-item series-${k % SERIES_COUNT}`;
      item.dataset.run = m.id;
      const last = m.epochs.at(-1);
      item.textContent = last
        ? t("train.compare.legend", { run: nameOf(m), accuracy: formatNumber(100 * last.val_accuracy, 1) })
        : nameOf(m);
      return item;
    }));
  }

  return { update, setLog: (on) => loss.setLog(on) };
}
