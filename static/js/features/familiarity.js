// The familiarity note under the predictions heading (/features): whether the picture is like the
// ones the model learned from, with the distance the server measured (cnncore/familiarity.py) and
// the line its held-out training pictures stay within. Its own element, made once, so the
// prediction panel's markup stays as it is.

import { t } from "../i18n.js";
import { formatNumber } from "../format.js";

let note = null;

function element() {
  if (note === null) {
    note = document.createElement("p");
    note.id = "familiarity-note";
    note.className = "familiarity-note";
    note.setAttribute("role", "status");
    note.hidden = true;
    document.getElementById("pred-heading").after(note);
  }
  return note;
}

/** Show (or hide, when the answer has none) the familiarity of the answer's picture. */
export function renderFamiliarity(body) {
  const node = element();
  const found = body.familiarity;
  node.hidden = !found;
  node.classList.toggle("is-unlike", Boolean(found?.unlike));
  if (!found) {
    node.textContent = "";
    return;
  }
  const dataset = body.weights?.dataset;
  node.textContent = t(found.unlike ? "features.familiarity.unlike" : "features.familiarity.like", {
    data: dataset ? t(`features.dataset.${dataset}`) : body.model,
    score: formatNumber(found.score, 1),
    threshold: formatNumber(found.threshold, 1),
  });
  node.title = t("features.familiarity.method");
}
