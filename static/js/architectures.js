// The architectures page (/architectures): pick a zoo model and an input size, see every layer's
// output shape, parameters and MACs (from /api/models/{name}/summary), grouped into the blocks the
// curriculum names (residual blocks with their shortcut, Inception modules with their branches),
// drawn as a block diagram (arch_diagram.js) whose boxes mark their rows in the table, and the two
// cost comparisons of /api/models/costs. The page state lives in the URL (open blocks, the pick).

import { t } from "./i18n.js";
import { clearErrors, getJSON, isAbort, latestOnly, showErrors } from "./api.js";
import { fillModelOptions, modelCatalogue } from "./model_catalogue.js";
import { createState } from "./state.js";
import { bindControls } from "./controls.js";
import { formatCount, formatPair, shapeText } from "./format.js";
import { createDiagram } from "./arch_diagram.js";

const ARCH_STATE = [
  { name: "model", type: "string", default: "resnet18", maxLength: 32 },
  { name: "channels", type: "int", default: 3, min: 1, max: 4 },
  { name: "height", type: "int", default: 224, min: 1, max: 512 },
  { name: "width", type: "int", default: 224, min: 1, max: 512 },
  { name: "num_classes", type: "int", default: 1000, min: 1, max: 1000 },
  { name: "blocks", type: "bool", default: true },
  { name: "open", type: "list", default: [] }, // diagram blocks opened or closed by the reader
  { name: "pick", type: "string", default: "", maxLength: 200 }, // the diagram box picked
];
// Changes that redraw on the page without asking the server again.
const LOCAL_FIELDS = new Set(["blocks", "open", "pick"]);

const $ = (id) => document.getElementById(id);
const state = createState(ARCH_STATE);
const form = $("arch-controls");
const summaryRoot = $("summary");
const table = $("layer-table");
const latest = latestOnly();
let models = [];
let lastSummary = null;
let summaries = 0;
let refreshQueued = false;
let pickedRows = new Set();
const diagram = createDiagram($("diagram"), {
  onPick(item) {
    state.set({ pick: item.key });
    pickedRows = new Set(item.rows.map((row) => row.name));
    markRows();
    $("diagram-pick-text").textContent = t("arch.diagram.picked", { name: item.name, count: item.rows.length });
    $("diagram-pick").hidden = false;
  },
  onToggle(openKeys) {
    state.set({ open: openKeys });
  },
});

// --- small helpers -----------------------------------------------------------------------------

function el(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

/** 1 814 073 344 → "1.81 G" (SI prefixes, as papers quote MACs). */
function shortCount(value) {
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [size, unit] of units) {
    if (value >= size) return `${(value / size).toFixed(2)} ${unit}`;
  }
  return String(value);
}

function modelInfo(name) {
  return models.find((model) => model.name === name) || null;
}

// --- blocks: how dotted layer names group into the blocks the curriculum names -----------------

/**
 * "layer1.0.conv1" → "layer1.0" (a block inside a stage); "inception3a.branch2.1.conv" →
 * "inception3a"; "features.3" → "features"; "conv1" → "conv1".
 */
function blockOf(name) {
  const parts = name.split(".");
  if (parts.length > 2 && /^\d+$/.test(parts[1])) return `${parts[0]}.${parts[1]}`;
  return parts[0];
}

/** The lane a layer runs in inside its block: an Inception branch or a residual shortcut. */
function laneOf(layer, block) {
  const rest = layer.name.slice(block.length + 1).split(".");
  const branch = /^branch(\d+)$/.exec(rest[0] || "");
  if (branch) return { lane: branch[1], label: t("arch.lane.branch", { n: branch[1] }) };
  if (rest[0] === "downsample") {
    const identity = layer.type === "Identity";
    return { lane: "shortcut", label: t(identity ? "arch.lane.identity" : "arch.lane.projection") };
  }
  return null;
}

function groupLayers(layers) {
  const groups = [];
  for (const layer of layers) {
    const block = blockOf(layer.name);
    const last = groups[groups.length - 1];
    if (last && last.name === block) last.layers.push(layer);
    else groups.push({ name: block, layers: [layer] });
  }
  // A block's output is what the next block receives (exact for concatenations and additions,
  // which are not layers of their own); the last block's is its last layer's output.
  const ran = groups.filter((group) => group.layers.some((layer) => layer.output_shape));
  ran.forEach((group, index) => {
    const next = ran[index + 1];
    const own = group.layers.filter((layer) => layer.output_shape);
    group.output = next ? next.layers.find((l) => l.input_shape).input_shape : own[own.length - 1].output_shape;
  });
  for (const group of groups) {
    group.params = group.layers.reduce((sum, layer) => sum + layer.params, 0);
    group.macs = group.layers.reduce((sum, layer) => sum + layer.macs, 0);
    const lanes = group.layers.map((layer) => laneOf(layer, group.name)?.lane);
    group.kind = lanes.includes("shortcut") ? "residual" : lanes.includes("1") ? "inception" : "plain";
  }
  return groups;
}

// --- rendering ---------------------------------------------------------------------------------

function shareMeter(macs, total) {
  const share = total > 0 ? macs / total : 0;
  const percent = (share * 100).toFixed(1);
  return el("meter", {
    attrs: { min: "0", max: "1", value: String(share), title: t("arch.share", { percent }) },
    text: `${percent}%`,
  });
}

function kernelText(layer) {
  if (!layer.kernel_size) return "";
  const [kh, kw] = layer.kernel_size;
  const [sh, sw] = layer.stride;
  const stride = sh === sw ? `${sh}` : `${sh}×${sw}`;
  return `${kh}×${kw} /${stride}`;
}

/** The receptive field cell: "size /stride", linked to the receptive-field explorer. */
function fieldCell(layer) {
  const field = layer.receptive_field;
  if (!field) return el("td", { className: "mono", text: "–", attrs: { title: layer.receptive_field_reason || "" } });
  const text = field.is_global
    ? t("arch.rf.global")
    : `${formatPair(field.size)} /${formatPair(field.stride)}${field.aligned ? "" : " *"}`;
  const query = new URLSearchParams({ model: state.get("model"), layer: layer.name });
  const link = el("a", { text, attrs: { href: `/receptive-field?${query}` } });
  const title = t("arch.rf.title", { size: formatPair(field.size), stride: formatPair(field.stride),
    start: formatPair(field.start) }) + (field.aligned ? "" : ` ${t("arch.rf.not_aligned")}`);
  return el("td", { className: "mono rf-cell", attrs: { title, "data-rf-size": formatPair(field.size) } }, [link]);
}

function layerRow(layer, total, block) {
  const lane = block ? laneOf(layer, block) : null;
  const name = el("td", { className: "layer-name", text: layer.name });
  if (lane) name.append(el("span", { className: "lane-tag", text: lane.label }));
  const row = el("tr", { className: block ? "block-row" : "", attrs: { "data-layer": layer.name } }, [
    name,
    el("td", { text: layer.type }),
    el("td", { className: "mono", text: kernelText(layer) }),
    el("td", {
      className: "mono",
      text: shapeText(layer.output_shape, t("arch.not_run")),
    }),
    fieldCell(layer),
    el("td", { className: "num", text: formatCount(layer.params) }),
    el("td", { className: "num", text: formatCount(layer.macs) }),
    el("td", {}, [shareMeter(layer.macs, total)]),
  ]);
  if (lane) row.dataset.lane = lane.lane;
  if (!layer.output_shape) row.classList.add("is-idle");
  return row;
}

function blockBody(group, total) {
  const body = el("tbody", { className: "block-rows", attrs: { "data-block": group.name } });
  const kind = group.kind === "plain"
    ? t("arch.block.plain", { count: group.layers.length })
    : t(`arch.block.${group.kind}`);
  const head = el("th", { attrs: { scope: "rowgroup", colspan: "3" }, text: group.name }, [
    el("span", { className: "block-kind", text: kind }),
  ]);
  body.append(el("tr", { className: "block-head" }, [
    head,
    el("td", { className: "mono", text: shapeText(group.output) }),
    el("td"),
    el("td", { className: "num", text: formatCount(group.params) }),
    el("td", { className: "num", text: formatCount(group.macs) }),
    el("td", {}, [shareMeter(group.macs, total)]),
  ]));
  for (const layer of group.layers) body.append(layerRow(layer, total, group.name));
  if (group.kind !== "plain") {
    const text = group.kind === "residual"
      ? t("arch.merge.add")
      : t("arch.merge.concat", { channels: group.output ? group.output[0] : "?" });
    body.append(el("tr", { className: "block-merge" }, [el("td", { attrs: { colspan: "8" }, text })]));
  }
  return body;
}

/** The rows of the picked diagram box, marked in the table (it is redrawn on a view change). */
function markRows() {
  for (const row of table.querySelectorAll("tr[data-layer]")) {
    row.classList.toggle("is-picked", pickedRows.has(row.dataset.layer));
  }
}

function showPickedRow() {
  const row = table.querySelector("tr.is-picked");
  if (row) row.scrollIntoView({ block: "center" });
}

function renderSummary(summary, { redrawDiagram = true } = {}) {
  lastSummary = summary;
  $("total-params").textContent = formatCount(summary.total_params);
  $("total-macs").textContent = t("arch.macs_approx", {
    value: formatCount(summary.total_macs), short: shortCount(summary.total_macs),
  });
  $("layer-count").textContent = String(summary.layers.length);
  const ran = summary.layers.filter((layer) => layer.output_shape);
  $("model-output").textContent = shapeText(ran.length ? ran[ran.length - 1].output_shape : null);
  for (const body of table.querySelectorAll("tbody")) body.remove();
  if (state.get("blocks")) {
    // A "block" of one layer (a stem conv, a pool, the classifier) is shown as a plain row.
    let plain = null;
    for (const group of groupLayers(summary.layers)) {
      if (group.layers.length > 1) {
        table.append(blockBody(group, summary.total_macs));
        plain = null;
        continue;
      }
      if (!plain) table.append((plain = el("tbody")));
      plain.append(layerRow(group.layers[0], summary.total_macs, null));
    }
  } else {
    const body = el("tbody");
    for (const layer of summary.layers) body.append(layerRow(layer, summary.total_macs, null));
    table.append(body);
  }
  markRows();
  if (redrawDiagram) {
    pickedRows = new Set();
    $("diagram-pick").hidden = true;
    diagram.show(summary, state.get("open"));
    if (state.get("pick")) diagram.pick(state.get("pick"));
  }
  summaryRoot.dataset.model = summary.model;
  summaryRoot.dataset.summaries = String(++summaries);
}

function costCard(comparison) {
  const kernel = comparison.standard.layers[0].kernel_size.join("×");
  const row = (label, layer, className) => el("tr", { className }, [
    el("th", { attrs: { scope: "row" }, text: label }),
    el("td", { className: "mono", text: layer.kernel_size ? kernelText(layer) : "" }),
    el("td", { className: "mono", text: `${shapeText(layer.input_shape)} → ${shapeText(layer.output_shape)}` }),
    el("td", { className: "num", text: formatCount(layer.params) }),
    el("td", { className: "num", text: formatCount(layer.macs) }),
  ]);
  const header = el("tr", {}, [
    el("th", { attrs: { scope: "col" }, text: t("arch.cost.layer") }),
    el("th", { attrs: { scope: "col" }, text: t("arch.col.kernel") }),
    el("th", { attrs: { scope: "col" }, text: t("arch.col.output") }),
    el("th", { attrs: { scope: "col" }, className: "num", text: t("arch.col.params") }),
    el("th", { attrs: { scope: "col" }, className: "num", text: t("arch.col.macs") }),
  ]);
  const body = el("tbody");
  body.append(row(t("arch.cost.standard", { kernel }), comparison.standard.layers[0], "is-total"));
  for (const layer of comparison.factorised.layers) body.append(row(layer.name, layer, ""));
  body.append(el("tr", { className: "is-total" }, [
    el("th", { attrs: { scope: "row", colspan: "3" }, text: `${t("arch.cost.factorised")} · ${t("arch.cost.total")}` }),
    el("td", { className: "num", text: formatCount(comparison.factorised.params) }),
    el("td", { className: "num", text: formatCount(comparison.factorised.macs) }),
  ]));
  const ratio = comparison.macs_ratio;
  return el("article", { className: "cost-card", attrs: { "data-cost": comparison.name } }, [
    el("h3", { text: t(`arch.cost.${comparison.name}.title`) }),
    el("p", { className: "hint", text: t(`arch.cost.${comparison.name}.lede`) }),
    el("p", {
      text: t("arch.cost.source", {
        source: comparison.source,
        input: shapeText([comparison.input.channels, comparison.input.height, comparison.input.width]),
        output: shapeText([comparison.output.channels, comparison.output.height, comparison.output.width]),
      }),
    }),
    el("div", { className: "table-scroll" }, [el("table", {}, [el("thead", {}, [header]), body])]),
    el("p", {
      className: "cost-ratio",
      text: t("arch.cost.ratio", { ratio: ratio.toFixed(4), times: (1 / ratio).toFixed(1) }),
    }),
    el("meter", { attrs: { min: "0", max: "1", value: String(ratio) }, text: ratio.toFixed(4) }),
    el("p", { className: "cost-formula", text: t("arch.cost.formula", { formula: comparison.formula }) }),
  ]);
}

// --- model choice and requests -----------------------------------------------------------------

function showModelInfo() {
  const info = modelInfo(state.get("model"));
  $("model-paper").textContent = info && info.family !== "uploaded"
    ? t("arch.paper", { family: info.family, paper: info.paper }) : "";
  const classes = form.elements.num_classes;
  classes.disabled = Boolean(info) && info.num_classes === null;
  classes.title = classes.disabled ? t("arch.num_classes_none") : "";
}

/** The chosen model's own input size and classes (a model change starts from them). */
function useModelDefaults() {
  const info = modelInfo(state.get("model"));
  if (!info) return;
  const { channels, height, width } = info.default_input;
  state.set({ channels, height, width, num_classes: info.num_classes ?? state.get("num_classes") });
}

function summaryURL(values) {
  const query = new URLSearchParams({
    channels: values.channels, height: values.height, width: values.width,
  });
  const info = modelInfo(values.model);
  if (!info || info.num_classes !== null) query.set("num_classes", values.num_classes);
  return `/api/models/${encodeURIComponent(values.model)}/summary?${query}`;
}

async function refresh() {
  refreshQueued = false;
  showModelInfo();
  summaryRoot.classList.add("is-stale");
  try {
    const summary = await latest((signal) => getJSON(summaryURL(state.values()), { signal }));
    clearErrors(form);
    renderSummary(summary);
    summaryRoot.classList.remove("is-stale");
  } catch (error) {
    if (isAbort(error)) return;
    showErrors(form, error);
    summaryRoot.dataset.errors = String(Number(summaryRoot.dataset.errors || 0) + 1);
  }
}

/** Several state changes in one event (a model change resets the size) make one request. */
function queueRefresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  queueMicrotask(refresh);
}

async function showCosts() {
  try {
    $("costs").replaceChildren(...(await getJSON("/api/models/costs")).map(costCard));
  } catch (error) {
    showErrors($("costs-section"), error);
  }
}

async function start() {
  const costsShown = showCosts();
  try {
    models = await modelCatalogue();
    fillModelOptions(form.elements.model, models);
    // an uploaded model's input and classes are its file's: a link need not spell them out
    if (modelInfo(state.get("model"))?.family === "uploaded") useModelDefaults();
  } catch (error) {
    showErrors(form, error);
  }
  bindControls(form, state, {
    onUserChange(name) {
      if (name === "model") {
        // the previous model's picked box and its rows are gone at once, not when the new
        // model's summary arrives
        pickedRows = new Set();
        $("diagram-pick").hidden = true;
        useModelDefaults();
        state.set({ open: [], pick: "" });
      }
    },
  });
  $("reset-input").addEventListener("click", useModelDefaults);
  $("diagram-open-all").addEventListener("click", () => diagram.openAll(true));
  $("diagram-close-all").addEventListener("click", () => diagram.openAll(false));
  $("diagram-show-row").addEventListener("click", showPickedRow);
  state.subscribe((changed) => {
    if ([...changed].every((name) => LOCAL_FIELDS.has(name))) {
      if (changed.has("blocks") && lastSummary) renderSummary(lastSummary, { redrawDiagram: false });
    } else {
      queueRefresh();
    }
  });
  await Promise.all([refresh(), costsShown]);
  document.body.dataset.ready = "true";
}

start();
