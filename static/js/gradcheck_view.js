// The /train "Gradient check" panel: POST /api/gradcheck with the panel's settings and show each
// parameter tensor's relative error between backpropagation and central differences,
// (f(θ+ε) − f(θ−ε)) / 2ε, green where it is below the threshold and red where it is not.

import { t } from "./i18n.js";
import { clearErrors, postJSON, showErrors } from "./api.js";
import { shapeText } from "./format.js";

const exp = (value) => Number(value).toExponential(2);

function row(tensor) {
  const tr = document.createElement("tr");
  tr.dataset.passed = String(tensor.passed);
  const cells = [
    tensor.name,
    shapeText(tensor.shape),
    t("train.gradcheck.checked_of", { checked: tensor.checked, total: tensor.total }),
    exp(tensor.relative_error),
    exp(tensor.max_abs_difference),
    t(tensor.passed ? "train.gradcheck.pass" : "train.gradcheck.fail"),
  ];
  for (const [index, text] of cells.entries()) {
    const cell = document.createElement(index === 0 ? "th" : "td");
    if (index === 0) cell.scope = "row";
    cell.textContent = text;
    tr.append(cell);
  }
  const error = tr.children[3];
  error.className = "relative-error";
  error.dataset.value = String(tensor.relative_error); // the exact number, for reading back
  tr.children[5].className = "verdict";
  return tr;
}

/** Wire the panel: `root` is the section holding #gradcheck-form, -status, -table, -body. */
export function createGradcheckView(root) {
  const form = root.querySelector("#gradcheck-form");
  const status = root.querySelector("#gradcheck-status");
  const table = root.querySelector("#gradcheck-table");
  const body = root.querySelector("#gradcheck-body");
  const button = root.querySelector("#gradcheck-run");

  function settings() {
    const data = new FormData(form);
    return {
      model: data.get("model"),
      activation: data.get("activation"),
      epsilon: Number(data.get("epsilon")),
      samples: Number(data.get("samples")),
      seed: Number(data.get("seed")),
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    status.textContent = t("train.gradcheck.working");
    try {
      const answer = await postJSON("/api/gradcheck", settings());
      body.replaceChildren(...answer.tensors.map(row));
      table.hidden = false;
      status.textContent = t(answer.passed ? "train.gradcheck.all_pass" : "train.gradcheck.some_fail", {
        formula: answer.formula, epsilon: exp(answer.epsilon), threshold: exp(answer.threshold),
        worst: exp(answer.max_relative_error),
      });
    } catch (error) {
      showErrors(form, error);
      status.textContent = "";
    } finally {
      button.disabled = false;
    }
  });
}
