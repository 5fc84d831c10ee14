// "Why this prediction" on /features: the class (top one or chosen), the method, the target
// layer (default: the deepest map, with the reason), the heat map over the picture with an
// opacity slider, and occlusion as a job: started with the student's patch and stride, its
// progress polled, stoppable.

import { t } from "../i18n.js";
import { NOT_A_NUMBER, formatExact, formatPercent } from "../format.js";
import { clearErrors, getJSON, isAbort, latestOnly, postJSON, requestJSON, showErrors } from "../api.js";
import { noPredictionsKey } from "../features_api.js";

// the note after an explanation of an answer without predictions, by why it has none
const UNTRAINED_NOTE = {
  "features.predictions.no_labels": "explain.unnamed", "features.predictions.unnamed": "explain.unnamed",
};

const POLL_MS = 250;

export function createExplainPanel(nodes, state) {
  const latest = latestOnly();
  let answer = null; // the feature result
  let explained = null; // the CAM answer
  let job = null; // the occlusion in progress or done
  let polling = null;

  function picture() {
    const steps = answer.preprocessing.filter((s) => s.step !== "normalise");
    return steps[steps.length - 1].url;
  }

  function drawOverlay() {
    const method = state.get("method");
    const url = method === "occlusion" ? job?.map : explained?.maps[method];
    nodes.overlay.hidden = !url;
    if (url) nodes.overlay.src = url;
    nodes.overlay.style.opacity = String(state.get("opacity"));
    nodes.opacityValue.textContent = `${Math.round(state.get("opacity") * 100)}%`;
    nodes.occlusion.hidden = method !== "occlusion";
    nodes.methodNote.textContent = t(`explain.about.${method}`);
  }

  function fillClasses() {
    const chosen = state.get("cls");
    const options = [new Option(t("explain.class.top"), "-1")];
    for (const p of answer.predictions ?? []) {
      options.push(new Option(`${p.label} (${formatPercent(p.prob, 1)})`, String(p.index ?? -1)));
    }
    nodes.classSelect.replaceChildren(...options.filter((o, k) => k === 0 || o.value !== "-1"));
    nodes.classIndex.value = chosen >= 0 ? String(chosen) : "";
    nodes.classSelect.value = [...nodes.classSelect.options].some((o) => o.value === String(chosen))
      ? String(chosen) : "-1";
  }

  function fillLayers() {
    const choices = explained?.layers ?? [];
    nodes.layerSelect.replaceChildren(...choices.map((c) => new Option(
      c.name === explained.default_layer ? t("explain.layer.default", { name: c.name }) : c.name, c.name)));
    nodes.layerSelect.value = explained?.layer ?? "";
    nodes.layerReason.textContent = explained
      ? t(`explain.reason.${explained.reason}`, { name: explained.default_layer,
        shape: explained.layers.find((c) => c.name === explained.default_layer)?.shape.join("×") ?? "" })
      : "";
  }

  async function explain() {
    if (!answer || answer.mode !== "learned" || !state.get("why")) return;
    clearErrors(nodes.form);
    nodes.status.textContent = t("explain.working");
    const body = { result: answer.id, integrated_gradients: state.get("method") === "integrated_gradients" };
    if (state.get("cls") >= 0) body.target = state.get("cls");
    if (state.get("xlayer")) body.layer = state.get("xlayer");
    try {
      explained = await latest((signal) => postJSON("/api/explanations", body, { signal }));
      nodes.status.textContent = t("explain.done", {
        label: explained.label ?? String(explained.target),
        score: explained.score === null ? NOT_A_NUMBER : formatExact(explained.score), // null: ±inf, NaN
        probability: formatPercent(explained.probability, 1), layer: explained.layer,
      }) + (answer.predictions ? "" : `. ${t(UNTRAINED_NOTE[noPredictionsKey(answer)] ?? "explain.untrained")}`);
      nodes.picture.src = picture();
      fillLayers();
      drawOverlay();
    } catch (error) {
      if (isAbort(error)) return;
      nodes.status.textContent = "";
      showErrors(nodes.form, error, { target: "cls", layer: "xlayer" });
    }
  }

  function showJob() {
    nodes.progress.max = Math.max(1, job?.total ?? 1);
    nodes.progress.value = job?.done ?? 0;
    nodes.progressText.textContent = job ? t(`explain.occlusion.${job.state}`, { done: job.done, total: job.total }) : "";
    nodes.start.hidden = job?.state === "running";
    nodes.stop.hidden = job?.state !== "running";
    drawOverlay();
  }

  async function poll() {
    polling = null;
    if (!job || job.state !== "running") return;
    try {
      job = await getJSON(`/api/explanations/occlusion/${job.id}`);
    } catch (error) {
      showErrors(nodes.form, error);
      return;
    }
    showJob();
    if (job.state === "running") polling = setTimeout(poll, POLL_MS);
  }

  async function startOcclusion() {
    clearErrors(nodes.form);
    const body = { result: answer.id, patch: state.get("patch"), stride: state.get("ostride") };
    if (state.get("cls") >= 0) body.target = state.get("cls");
    try {
      job = await postJSON("/api/explanations/occlusion", body);
    } catch (error) {
      showErrors(nodes.form, error, { stride: "ostride", target: "cls" });
      return;
    }
    showJob();
    polling = setTimeout(poll, POLL_MS);
  }

  async function stopOcclusion() {
    if (!job) return;
    job = await requestJSON("DELETE", `/api/explanations/occlusion/${job.id}`);
    showJob();
  }

  nodes.start.addEventListener("click", startOcclusion);
  nodes.stop.addEventListener("click", stopOcclusion);
  nodes.toggle.addEventListener("click", () => state.set({ why: !state.get("why") }));
  nodes.classSelect.addEventListener("change", () => state.set({ cls: Number(nodes.classSelect.value) }));
  nodes.classIndex.addEventListener("change", () => {
    const value = nodes.classIndex.value.trim();
    state.set({ cls: value === "" ? -1 : Math.max(0, Math.floor(Number(value)) || 0) });
  });
  nodes.layerSelect.addEventListener("change", () => state.set({ xlayer: nodes.layerSelect.value }));
  nodes.method.addEventListener("change", () => state.set({ method: nodes.method.value }));
  nodes.opacity.addEventListener("input", () => state.set({ opacity: Number(nodes.opacity.value) }));
  nodes.patch.addEventListener("change", () => state.set({ patch: Number(nodes.patch.value) || 16 }));
  nodes.stride.addEventListener("change", () => state.set({ ostride: Number(nodes.stride.value) || 8 }));

  function syncControls() {
    nodes.body.hidden = !state.get("why");
    nodes.toggle.setAttribute("aria-expanded", String(state.get("why")));
    nodes.toggle.textContent = t(state.get("why") ? "explain.toggle_hide" : "explain.toggle");
    nodes.method.value = state.get("method");
    nodes.opacity.value = String(state.get("opacity"));
    nodes.patch.value = String(state.get("patch"));
    nodes.stride.value = String(state.get("ostride"));
  }

  state.subscribe((changed) => {
    syncControls();
    if (["why", "cls", "xlayer"].some((n) => changed.has(n))
        || (changed.has("method") && state.get("method") === "integrated_gradients"
          && !explained?.maps.integrated_gradients)) {
      job = null;
      showJob();
      return explain();
    }
    if (changed.has("method") || changed.has("opacity")) drawOverlay();
  });
  syncControls();

  return {
    /** A new feature result: explain it again (when shown). */
    refresh(next) {
      answer = next;
      explained = null;
      job = null;
      if (polling) clearTimeout(polling);
      nodes.section.hidden = next.mode !== "learned";
      fillClasses();
      showJob();
      explain();
    },
  };
}
