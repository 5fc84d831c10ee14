// "Trained weights here": which zoo models this installation can show trained (GET /api/weights)
// and, for a model torchvision publishes ImageNet weights for but that has none here, the exact
// command that gets them (`cnnviz weights get NAME`, run where the server runs).

import { t } from "../i18n.js";
import { getJSON } from "../api.js";
import { formatNumber } from "../format.js";

const TRAINED = new Set(["bundled", "imagenet", "imported"]);

function statusText(row) {
  const file = row.weights.find((w) => w.kind === row.chosen);
  if (row.chosen === "bundled") return t("features.catalogue.bundled");
  if (row.chosen === "imagenet") {
    return t("features.catalogue.imagenet", {
      top1: formatNumber(file.top1, 1), top5: formatNumber(file.top5, 1),
    });
  }
  if (row.chosen === "imported") return t("features.catalogue.imported", { file: file.file });
  if (row.published) {
    return t("features.catalogue.missing", {
      top1: formatNumber(row.published.top1, 1),
      size: formatNumber(row.published.params / 1e6, 1),
    });
  }
  return t("features.catalogue.untrained");
}

function item(row) {
  const entry = document.createElement("li");
  entry.className = TRAINED.has(row.chosen) ? "catalogue-item trained" : "catalogue-item";
  const name = document.createElement("strong");
  name.textContent = row.model;
  const status = document.createElement("span");
  status.textContent = ` ${statusText(row)}`;
  entry.append(name, status);
  if (row.command) {
    const command = document.createElement("code");
    command.className = "catalogue-command";
    command.textContent = row.command;
    entry.append(" ", command);
  }
  return entry;
}

/** Fill `list` (an <ul>) from GET /api/weights; `note` says where the commands run. */
export async function showWeightsCatalogue(list, note) {
  const rows = await getJSON("/api/weights");
  list.replaceChildren(...rows.map(item));
  note.hidden = !rows.some((row) => row.command);
  return rows;
}
