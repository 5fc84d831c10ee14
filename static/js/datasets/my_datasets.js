// "Your datasets" on /teach: the datasets this browser made (it holds their owner tokens), each a
// link that opens it and a button that deletes it with its pictures after asking — the server
// keeps a few per computer, and its refusal says "delete one first". A dataset a training run
// uses is not deleted (409, said in the page's language). Wiring: teach.js calls show().

import { clearErrors, showErrors } from "../api.js";
import { t } from "../i18n.js";
import { deleteDataset, ownDataset, ownedIds } from "./dataset_api.js";

/**
 * @param {{box: HTMLElement, list: HTMLElement, make: HTMLElement, errors: HTMLElement}} nodes
 * @param {(id: string) => void} onDeletedOpen called when the dataset on screen was deleted
 */
export function createMyDatasets(nodes, onDeletedOpen) {
  let open = ""; // the dataset on screen

  function item(dataset) {
    const lang = document.documentElement.lang;
    const link = document.createElement("a");
    link.href = `/teach?${new URLSearchParams({ lang, dataset: dataset.id })}`;
    link.textContent = t("teach.mine.item", { name: dataset.name, images: dataset.images });
    if (dataset.id === open) link.setAttribute("aria-current", "page");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary mine-delete";
    remove.textContent = t("teach.browse.delete");
    remove.setAttribute("aria-label", t("teach.mine.delete", { name: dataset.name }));
    remove.addEventListener("click", async () => {
      if (!window.confirm(t("teach.mine.confirm", { name: dataset.name, images: dataset.images }))) return;
      clearErrors(nodes.errors);
      try {
        await deleteDataset(dataset.id);
      } catch (error) {
        showErrors(nodes.errors, error);
        return;
      }
      if (dataset.id === open) onDeletedOpen(dataset.id);
      else await show(open);
    });
    const row = document.createElement("li");
    row.dataset.dataset = dataset.id;
    row.append(link, " ", remove);
    return row;
  }

  /** List this browser's datasets, `current` (the one on screen, "" for none) marked. */
  async function show(current = "") {
    open = current;
    try {
      const found = (await Promise.all(ownedIds().map(ownDataset))).filter(Boolean);
      nodes.list.replaceChildren(...found.map(item));
      nodes.box.hidden = found.length === 0;
      nodes.make.hidden = !open; // without one on screen, the form to make one is there
    } catch (error) {
      showErrors(nodes.errors, error);
    }
  }

  return { show };
}
