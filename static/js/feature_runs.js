// "See what your trained network sees": the /features weights choice — the model's bundled
// weights, or the newest checkpoint of a finished training run from /train (GET /api/runs).
// A run fixes the model it trained, so choosing a run may switch the model, and choosing a model
// keeps only a run of that model (or falls back to the bundled weights).

import { t } from "./i18n.js";
import { getJSON } from "./api.js";

const FINISHED = new Set(["completed", "stopped", "diverged", "stalled", "failed", "interrupted"]);

/** Runs that can be looked at: finished, with a checkpoint, and of a model the page knows. */
export async function loadRuns(modelNames) {
  const runs = await getJSON("/api/runs?limit=100");
  return runs.filter((run) => FINISHED.has(run.status) && run.checkpoint
    && modelNames.has(run.model));
}

/**
 * @param {{weights: HTMLSelectElement, run: HTMLSelectElement, note: HTMLElement}} nodes
 * @param {Array} runs  from loadRuns
 */
export function createRunPicker(nodes, runs) {
  const byId = new Map(runs.map((run) => [run.id, run]));
  nodes.run.replaceChildren(...runs.map((run) => new Option(
    // a run without a name is listed by its model and data set alone (no leading "·")
    t(run.label ? "features.run.option" : "features.run.option_unnamed",
      { label: run.label, model: run.model, dataset: run.dataset }), run.id)));
  nodes.weights.querySelector('option[value="run"]').disabled = runs.length === 0;
  nodes.note.textContent = runs.length === 0 ? t("features.run.none") : "";
  nodes.note.hidden = runs.length !== 0;

  return {
    runs,
    /** The state change that makes {weights, run, model} consistent after `name` changed. */
    reconcile(values, name) {
      if (values.weights !== "run") return values.run ? { run: "" } : {};
      const chosen = byId.get(values.run);
      if (name === "model" && chosen && chosen.model !== values.model) {
        const same = runs.find((run) => run.model === values.model);
        return same ? { run: same.id } : { weights: "bundled", run: "" };
      }
      if (chosen) return chosen.model === values.model ? {} : { model: chosen.model };
      const first = runs.find((run) => run.model === values.model) ?? runs[0];
      return first ? { run: first.id, model: first.model } : { weights: "bundled", run: "" };
    },
    /** Show the run select only while a run's weights are chosen. */
    show(values) {
      nodes.run.closest(".control").hidden = values.weights !== "run";
      if (values.run) nodes.run.value = values.run; // listed after the controls were first shown
    },
  };
}
