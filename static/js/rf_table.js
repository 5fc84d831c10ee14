// Every layer's theoretical receptive field (GET /api/models/{name}/receptive-fields) as a table:
// size r, jump (effective stride) and start per axis, and whether the paths merged into it are
// aligned. Layers with a feature map can be chosen (a button in the name cell); the chosen one is
// marked and scrolled into view inside the table's own box.

import { t } from "./i18n.js";
import { formatPair } from "./format.js";

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const sizeText = (size) => (size ? `${size.height}×${size.width}` : t("rf.table.flat"));

export function createLayerTable(body, scrollBox, { onPick }) {
  let rows = new Map(); // layer name → <tr>

  return {
    /** Fill the table with `layers` (the API's list, in execution order). */
    render(layers) {
      rows = new Map();
      body.replaceChildren(...layers.map((layer, index) => {
        const row = document.createElement("tr");
        row.dataset.layer = layer.name;
        const name = document.createElement("td");
        name.className = "layer-name";
        if (layer.output_size) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "link-button";
          button.textContent = layer.name;
          button.addEventListener("click", () => onPick(layer.name));
          name.append(button);
        } else {
          name.textContent = layer.name;
          row.classList.add("is-flat");
        }
        const size = layer.is_global ? t("rf.table.whole") : formatPair(layer.size);
        row.append(
          cell(String(index + 1), "num"),
          name,
          cell(layer.operation),
          cell(sizeText(layer.output_size), "mono"),
          cell(size, "num"),
          cell(formatPair(layer.jump), "num"),
          cell(formatPair(layer.start), "num"),
          cell(layer.aligned ? t("rf.table.yes") : t("rf.table.no")),
        );
        rows.set(layer.name, row);
        return row;
      }));
    },
    /** Mark `name` as the chosen layer and bring its row into the table's view. */
    select(name) {
      for (const [layer, row] of rows) {
        if (layer === name) row.setAttribute("aria-current", "true");
        else row.removeAttribute("aria-current");
      }
      const row = rows.get(name);
      if (!row) return;
      const top = row.offsetTop - scrollBox.clientHeight / 2 + row.offsetHeight / 2;
      scrollBox.scrollTo({ top: Math.max(0, top), behavior: "auto" });
    },
  };
}
