// Wires a unit's computation and "why this prediction" into /features: a click (or Enter) on a
// cell of the enlarged channel opens that unit; the walk back, the breadcrumb and the player
// change the `unit` path in the page state (features_state.js), and every change of the path
// fetches the last unit once (GET /api/features/{id}/unit) and draws it.

import { t } from "../i18n.js";
import { getJSON, isAbort, latestOnly } from "../api.js";
import { createUnitPanel } from "./unit_panel.js";
import { createExplainPanel } from "./explain_panel.js";
import { MAX_UNIT_PATH } from "./unit_state.js";

const INPUT = "_input";
const $ = (id) => document.getElementById(id);

export function bindUnits({ state, detail, channelCanvas, atlasCanvas }) {
  const latest = latestOnly();
  let answer = null;

  // The channel canvas and the atlas keep their arrow keys: the page's player must not see them.
  channelCanvas.dataset.ownKeys = "";
  atlasCanvas.dataset.ownKeys = "";

  const path = () => state.get("unit");
  const setPath = (next) => state.set({ unit: next.slice(-MAX_UNIT_PATH) });

  const panel = createUnitPanel(
    {
      section: $("unit-panel"), crumbs: $("unit-crumbs"), heading: $("unit-heading"),
      facts: $("unit-facts"), player: $("unit-player"), grids: $("unit-grids"),
      math: $("unit-math"), convLink: $("unit-conv-link"),
    },
    {
      onWalk(source, channel, y, x) {
        if (source === INPUT) return;
        setPath([...path(), { layer: source, channel, y, x }]);
      },
      onMove(y, x, unitIndex) {
        const last = path()[path().length - 1];
        const moved = unitIndex === null ? { ...last, y, x } : { ...last, channel: unitIndex, y: 0, x: 0 };
        setPath([...path().slice(0, -1), moved]);
      },
      onCrumb: (k) => setPath(path().slice(0, k + 1)),
    },
  );
  const explainPanel = createExplainPanel({
    section: $("explain-card"), toggle: $("explain-toggle"), body: $("explain-body"),
    form: $("explain-form"), status: $("explain-status"), classSelect: $("x-class"),
    classIndex: $("x-class-index"), method: $("x-method"), layerSelect: $("x-layer"),
    layerReason: $("x-layer-reason"), opacity: $("x-opacity"), opacityValue: $("x-opacity-value"),
    picture: $("explain-picture"), overlay: $("explain-overlay"), methodNote: $("explain-method-note"),
    occlusion: $("occlusion-controls"), patch: $("x-patch"), stride: $("x-ostride"),
    start: $("occlusion-start"), stop: $("occlusion-stop"), progress: $("occlusion-progress"),
    progressText: $("occlusion-progress-text"),
  }, state);

  function layerOf(name) {
    return answer?.layers.find((item) => item.name === name);
  }

  /** Open the unit under the enlarged channel's cursor (or pointer) of the open layer. */
  function open(row, col) {
    const layer = layerOf(state.get("layer")) ?? answer?.layers[0];
    if (!layer || answer.mode !== "learned") return;
    const [, width] = layer.tile;
    const unit = layer.units
      ? { layer: layer.name, channel: row * width + col, y: 0, x: 0 }
      : { layer: layer.name, channel: state.get("channel"), y: row, x: col };
    if (layer.units && unit.channel >= layer.channels) return;
    setPath([unit]);
  }

  channelCanvas.addEventListener("click", (event) => {
    const layer = layerOf(state.get("layer")) ?? answer?.layers[0];
    if (!layer) return;
    const [height, width] = layer.tile;
    const row = Math.min(height - 1, Math.floor((event.offsetY / channelCanvas.clientHeight) * height));
    const col = Math.min(width - 1, Math.floor((event.offsetX / channelCanvas.clientWidth) * width));
    open(row, col);
  });
  channelCanvas.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const { row, col } = detail.cursor();
    open(row, col);
  });

  async function drawField(unit) {
    const figure = $("unit-field");
    const layer = layerOf(unit.layer);
    if (!layer || layer.units) {
      figure.hidden = true;
      return;
    }
    const [channels, height, width] = answer.input.shape;
    const query = new URLSearchParams({ layer: unit.layer, y: unit.y, x: unit.x, channels, height, width });
    try {
      const field = await getJSON(`/api/models/${answer.model}/receptive-field?${query}`);
      const steps = answer.preprocessing.filter((s) => s.step !== "normalise");
      const image = $("unit-field-picture");
      image.src = steps[steps.length - 1].url;
      const box = $("unit-field-box");
      const { y0, y1, x0, x1 } = field.box;
      Object.assign(box.style, {
        top: `${(y0 / height) * 100}%`, left: `${(x0 / width) * 100}%`,
        height: `${((y1 - y0 + 1) / height) * 100}%`, width: `${((x1 - x0 + 1) / width) * 100}%`,
      });
      $("unit-field-caption").textContent = t("unit.field", { height: y1 - y0 + 1, width: x1 - x0 + 1,
        y0, y1, x0, x1 });
      figure.hidden = false;
    } catch {
      figure.hidden = true; // the arithmetic stands on its own
    }
  }

  async function load() {
    const current = path()[path().length - 1];
    if (!answer || answer.mode !== "learned" || !current) return panel.hide();
    const query = new URLSearchParams({ layer: current.layer, channel: current.channel, y: current.y, x: current.x });
    $("unit-error").hidden = true;
    try {
      const unit = await latest((signal) => getJSON(`/api/features/${answer.id}/unit?${query}`, { signal }));
      const source = unit.sources[0];
      const sourceShape = source === INPUT ? answer.input.shape : layerOf(source)?.shape;
      panel.show(unit, path(), { sourceShape });
      drawField(unit);
    } catch (error) {
      if (isAbort(error)) return;
      $("unit-error").textContent = error.message;
      $("unit-error").hidden = false;
    }
  }

  state.subscribe((changed) => {
    if (changed.has("unit")) load();
  });

  return {
    /** A new feature answer: its units and its explanations. */
    refresh(next) {
      if (answer && next.id === answer.id) return; // a redraw (colormap): nothing new to ask
      answer = next;
      load();
      explainPanel.refresh(next);
    },
  };
}
