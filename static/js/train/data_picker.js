// The dataset and transfer-source pickers of /train: the bundled datasets next to this
// browser's own datasets (the ids it holds owner tokens for, made on /teach), each with its
// current version and the earlier versions runs trained on (GET /api/train/datasets); and the
// transfer sources: the trained models shipped with cnnviz and installed ImageNet weights
// (GET /api/weights), the classifiers this browser uploaded (GET /api/uploaded-models, those it
// holds owner tokens for: only their owner may train from them), next to the finished runs.

import { t } from "../i18n.js";
import { getJSON } from "../api.js";
import { runName } from "../train_runs.js";
import { modelToken } from "../features/model_upload.js";

const TOKENS = "cnnviz.datasetTokens"; // datasets/dataset_api.js keeps them there

/** Ids of the datasets this browser made (it holds their owner tokens). */
export function ownDatasetIds() {
  try {
    const stored = JSON.parse(localStorage.getItem(TOKENS) ?? "{}");
    return stored && typeof stored === "object" ? Object.keys(stored).filter((id) => /^[0-9a-f]{16}$/.test(id)) : [];
  } catch {
    return [];
  }
}

function option(value, text, disabled = false) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = text;
  node.disabled = disabled;
  return node;
}

function group(label, options) {
  const node = document.createElement("optgroup");
  node.label = label;
  node.append(...options);
  return node;
}

/** Fill the dataset select from GET /api/train/datasets; keeps `value` when it is listed. */
export function fillDataSelect(select, listing, value) {
  const bundled = listing.bundled.map((d) => option(d.name, t(`train.data.${d.name}`)));
  const own = [];
  for (const d of listing.user) {
    const text = t("train.data.own", { name: d.name, version: d.version, images: d.images });
    const current = option(`user:${d.id}`, d.trainable ? text : `${text} — ${d.reason}`, !d.trainable);
    current.dataset.classes = d.classes.map((c) => `${c.name} ${c.images}`).join(", ");
    own.push(current, ...d.versions.slice().reverse().map((v) => option(`user:${d.id}@${v}`,
      t("train.data.own_version", { name: d.name, version: v }))));
  }
  const groups = [group(t("train.data.bundled"), bundled)];
  if (own.length) groups.push(group(t("train.data.mine"), own));
  select.replaceChildren(...groups);
  const values = [...select.options].filter((o) => !o.disabled).map((o) => o.value);
  if (values.includes(value)) select.value = value;
  else if (value.startsWith("user:")) {
    // a dataset this browser does not list (another browser's link): still trainable by id
    select.append(option(value, t("train.data.linked", { id: value.slice(5) })));
    select.value = value;
  }
  return listing;
}

export const loadDatasets = () => getJSON(`/api/train/datasets?${new URLSearchParams(ownDatasetIds().map((id) => ["mine", id]))}`);

/**
 * Weights a run can start from: [{value, text, arch}] of bundled classifiers and backbones and
 * installed ImageNet files. `arch`: the architecture a run from it trains (cnncore/transfer.py's
 * ARCHITECTURE_FIELDS): the zoo model and the run options its file records (batch_norm, width).
 */
export function weightSources(weights) {
  const sources = { bundled: [], imagenet: [] };
  for (const row of weights) {
    for (const file of row.weights) {
      const arch = { model: row.model, ...file.options };
      if (file.kind === "bundled" && row.model !== "autoencoder") {
        sources.bundled.push({ value: `bundled:${row.model}`, text: t("train.from.bundled", { model: t(`train.model.${row.model}`) }), arch });
      } else if (file.kind === "backbone") {
        // a bundled transfer-only backbone: named by its file (tinyvgg_colour.safetensors)
        const name = file.file.replace(/\.safetensors$/, "");
        sources.bundled.push({ value: `bundled:${name}`, text: t(`train.from.backbone.${name}`), arch });
      } else if (file.kind === "imagenet") {
        sources.imagenet.push({ value: `imagenet:${row.model}`, text: t("train.from.imagenet", { model: t(`train.model.${row.model}`) }), arch });
      }
    }
  }
  return sources;
}

/** This browser's uploaded classifiers as sources: [{value, text, channels, token}]. */
export function uploadedSources(models) {
  return models.filter((model) => model.num_classes !== null && modelToken(model.id)).map((model) => ({
    value: `uploaded:${model.model}`,
    text: t("train.from.uploaded", { model: model.title, shape: model.input_shape.join("×") }),
    channels: model.input_shape[0],
    token: modelToken(model.id),
  }));
}

/** The transfer sources as <option>s: none, shipped, ImageNet and uploaded weights, finished runs. */
export function fillSourceSelect(select, runs, sources, value) {
  const finished = runs.filter((run) => run.checkpoint && ["completed", "stopped"].includes(run.status));
  const groups = [option("", t("train.from.none"))];
  if (sources.bundled.length) groups.push(group(t("train.from.group.bundled"), sources.bundled.map((s) => option(s.value, s.text))));
  if (sources.imagenet.length) groups.push(group(t("train.from.group.imagenet"), sources.imagenet.map((s) => option(s.value, s.text))));
  if (sources.uploaded?.length) groups.push(group(t("train.from.group.uploaded"), sources.uploaded.map((s) => option(s.value, s.text))));
  if (finished.length) groups.push(group(t("train.from.group.runs"), finished.map((run) => option(run.id, runName(run, runs)))));
  select.replaceChildren(...groups);
  const listed = [...select.options].map((o) => o.value);
  select.value = listed.includes(value) ? value : "";
}
