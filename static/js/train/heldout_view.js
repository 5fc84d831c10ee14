// The held-out split of the run on screen (GET /api/runs/{id}/heldout): pictures per class the
// run learnt from and held out, per-class accuracy, and the pictures of the confusion-matrix
// cell the user opened, each with the network's prediction and a link to its explanation
// (Grad-CAM and the rest, /features with the run's weights and this picture).

import { t } from "../i18n.js";
import { getJSON } from "../api.js";
import { formatPercent } from "../format.js";

const percent = (value) => formatPercent(value, 1, "–"); // "–": no picture to score

function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function createHeldOutView(elements) {
  let runId = "";
  let wanted = null; // [true, predicted] of the cell to open once the split is known
  let splitTicket = 0; // latest wins, for the split and for the open cell apart
  let cellTicket = 0;
  let split = null;
  let timer = null; // a replayed run announces a checkpoint per epoch: one request for them all

  function reset(id) {
    runId = id;
    wanted = null;
    split = null;
    splitTicket += 1;
    cellTicket += 1;
    clearTimeout(timer);
    timer = null;
    elements.table.replaceChildren();
    elements.pictures.replaceChildren();
    elements.root.hidden = true;
    elements.cellHeading.textContent = "";
    elements.cellBox.hidden = true;
    delete elements.cellBox.dataset.cell;
    delete elements.root.dataset.checkpoint;
  }

  /** The class names to show: the run's, in the page's language when the view knows them. */
  function namesOf(body) {
    const shown = elements.classNames?.() ?? [];
    return shown.length === body.class_names.length ? shown : body.class_names;
  }

  function showSplit(body) {
    split = body;
    elements.root.hidden = false;
    elements.root.dataset.checkpoint = `${body.checkpoint}:${body.epoch}`;
    elements.note.textContent = t("train.heldout.note", { epoch: body.epoch, accuracy: percent(body.accuracy) });
    const head = document.createElement("tr");
    head.append(...["train.heldout.class", "train.heldout.train", "train.heldout.val", "train.heldout.accuracy"]
      .map((key) => { const th = cell("th", t(key)); th.scope = "col"; return th; }));
    const thead = document.createElement("thead");
    thead.append(head);
    const tbody = document.createElement("tbody");
    namesOf(body).forEach((name, c) => {
      const row = document.createElement("tr");
      row.dataset.class = String(c);
      const th = cell("th", `${c} ${name}`);
      th.scope = "row";
      row.append(th, cell("td", String(body.train_counts[c])), cell("td", String(body.val_counts[c])),
        cell("td", percent(body.per_class_accuracy[c])));
      tbody.append(row);
    });
    elements.table.replaceChildren(thead, tbody);
  }

  async function fetchSplit() {
    timer = null;
    if (!runId) return null;
    const mine = ++splitTicket;
    try {
      const body = await getJSON(`/api/runs/${runId}/heldout`);
      if (mine !== splitTicket) return null;
      showSplit(body);
      if (wanted) openCell(wanted); // its pictures as this checkpoint's network sees them
      return body;
    } catch {
      return null; // no checkpoint yet: the first epoch writes one
    }
  }

  /** Fetch the split soon: the run has a new checkpoint (after an epoch, or its end). Only a
   * checkpoint event calls this, so the page never asks for the split of a run without one. */
  function refresh() {
    if (timer === null) timer = setTimeout(fetchSplit, 300);
  }

  function explainLink(picture) {
    const link = document.createElement("a");
    const query = new URLSearchParams({
      model: elements.model(), weights: "run", run: runId, sample: "", heldout: String(picture.index), why: "1",
    });
    link.href = `/features?${query}`;
    link.className = "button-link heldout-explain";
    link.textContent = t("train.heldout.explain");
    link.setAttribute("aria-label", t("train.heldout.explain_picture", { index: picture.index }));
    return link;
  }

  /** Show the pictures of cell [true, predicted] (null: close), now or once the split is known. */
  function want(chosen) {
    wanted = chosen;
    if (!chosen || split) openCell(chosen);
  }

  async function openCell(chosen) {
    const mine = ++cellTicket;
    if (!chosen || !runId) {
      elements.pictures.replaceChildren();
      elements.cellHeading.textContent = "";
      elements.cellBox.hidden = true;
      return;
    }
    const [truth, guess] = chosen;
    try {
      const body = await getJSON(`/api/runs/${runId}/heldout?true=${truth}&predicted=${guess}`);
      if (mine !== cellTicket) return;
      if (!split || split.checkpoint !== body.checkpoint || split.epoch !== body.epoch) showSplit(body);
      const names = namesOf(body);
      elements.cellBox.hidden = false;
      elements.cellBox.dataset.cell = `${truth}:${guess}`;
      elements.cellHeading.textContent = t("train.heldout.cell", { truth: names[truth], guess: names[guess], count: body.total });
      elements.pictures.replaceChildren(...body.pictures.map((picture) => {
        const item = document.createElement("li");
        item.dataset.index = String(picture.index);
        const image = document.createElement("img");
        image.src = picture.url;
        image.className = "heldout-image";
        const caption = t("train.wrong.caption", { truth: names[picture.true], guess: names[picture.predicted],
          confidence: formatPercent(picture.confidence) });
        image.alt = caption;
        item.append(image, cell("span", caption), explainLink(picture));
        return item;
      }));
      if (body.total > body.pictures.length) {
        elements.pictures.append(cell("li", t("train.heldout.more", { shown: body.pictures.length, total: body.total }), "hint"));
      }
    } catch (error) {
      if (mine !== cellTicket) return;
      elements.cellBox.hidden = false;
      elements.cellHeading.textContent = error.message;
      elements.pictures.replaceChildren();
    }
  }

  return { reset, refresh, want };
}
