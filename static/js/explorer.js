// The wiring every step explorer shares (/conv, /pool): one trace per configuration change,
// fetched at once, one request in flight, the newest configuration drawn last (api.js coalesced); the shared player
// moving through its steps; the page's view drawing the step shown and its arithmetic written
// out; a hovered cell previewing another step without moving the player. The page keeps what is
// its own: its state table, controls, requests, view and arithmetic writer. Also the sample
// picture both explorers start from (/api/conv/presets, a seeded random input, cell edits).

import { t } from "./i18n.js";
import { ApiError, clearErrors, coalesced, getJSON, isAbort, latestOnly, showErrors } from "./api.js";
import { bindControls } from "./controls.js";
import { createPlayer } from "./player.js";
import { newSeed } from "./random.js";
import { INPUT_SOURCE_FIELDS } from "./conv_state.js";
import { markRedrawn } from "./redrawn.js";

/**
 * Wire one explorer page.
 * options:
 *   state         the page state (state.js), with `step`, `speed` and `edits` fields; a change
 *                 of any other field needs a new trace
 *   form, stage   the controls form (errors show under it) and the stage element
 *   player        the player's root element
 *   fieldAliases  API field name → the control whose error slot shows its message
 *   load(values, signal) → Promise<{ trace, data, error? }>: the trace of a configuration and
 *                 the numbers it was made from; `error`, a failure shown beside a trace that
 *                 did arrive. A rejection keeps the last trace on screen, marked stale.
 *   createView(handlers) → { show(trace, data), step(index), preview(index | null),
 *                 setInputValue(c, r, x, value) }; handlers: onEdit(kind, at, value),
 *                 onHoverStep(index | null), onPickStep(index)
 *   renderMath({ trace, data }, index, preview): write step `index` out
 * Returns { view, player, refresh(), start(onUserChange) }.
 */
export function createExplorer(options) {
  const { state, form, stage, fieldAliases = {}, load, renderMath } = options;
  const playerFields = new Set(["step", "speed"]);
  let current = null; // { trace, data } on screen
  let hovered = null; // the step previewed under the pointer
  const latest = latestOnly();

  const view = options.createView({
    onEdit: editCell,
    onHoverStep(index) {
      hovered = index;
      if (!current) return;
      view.preview(index);
      drawMath();
    },
    onPickStep: (index) => player.seek(index),
  });

  const player = createPlayer(options.player, {
    index: state.get("step"),
    speed: state.get("speed"),
    onStep(index) {
      state.set({ step: index });
      draw(index);
    },
    onSpeedChange: (speed) => state.set({ speed }),
  });

  function drawMath() {
    if (current) renderMath(current, hovered ?? player.index, hovered !== null);
  }

  function draw(index) {
    if (!current) return;
    view.step(index);
    drawMath();
  }

  /** A cell edit replaces any earlier edit of the same cell; the input shows it at once. */
  function editCell(kind, at, value) {
    const key = (edit) => `${edit.kind}:${edit.at.join(",")}`;
    const edit = { kind, at, value };
    const edits = state.get("edits").filter((other) => key(other) !== key(edit));
    state.set({ edits: [...edits, edit] });
    if (kind === "i") view.setInputValue(at[0], at[1], at[2], value);
  }

  function showError(error) {
    if (error) {
      const shown = error instanceof ApiError ? error : new ApiError(0, String(error), { "*": String(error) });
      showErrors(form, shown, fieldAliases);
    } else {
      clearErrors(form);
    }
    form.classList.toggle("has-errors", Boolean(error));
  }

  async function refresh(stale = () => false) {
    const values = state.values();
    stage.setAttribute("aria-busy", "true");
    let loaded;
    try {
      loaded = await latest((signal) => load(values, signal));
    } catch (error) {
      if (isAbort(error)) return; // superseded by a newer configuration
      if (stale()) return; // a newer configuration is on its way
      showError(error);
      stage.classList.add("is-stale");
      return;
    }
    if (stale()) return; // drawn by the run that follows
    showError(loaded.error);
    stage.classList.remove("is-stale");
    current = { trace: loaded.trace, data: loaded.data };
    hovered = null;
    view.show(loaded.trace, loaded.data);
    player.setCount(loaded.trace.steps.length, state.get("step"));
    state.set({ step: player.index });
    draw(player.index);
    stage.setAttribute("aria-busy", "false");
    stage.dataset.steps = String(loaded.trace.steps.length);
    stage.dataset.traces = String(Number(stage.dataset.traces || 0) + 1); // tests wait on this
    markRedrawn(stage.id);
  }

  const scheduleRefresh = coalesced(refresh);

  state.subscribe((changed) => {
    if ([...changed].some((name) => !playerFields.has(name))) scheduleRefresh();
    if (changed.has("step") && current && state.get("step") !== player.index) player.seek(state.get("step"));
    if (changed.has("speed")) player.setSpeed(state.get("speed"));
  });

  return {
    view,
    player,
    refresh,
    /** Bind the controls, show the first trace, then say the page is ready. */
    async start(onUserChange) {
      bindControls(form, state, { onUserChange });
      await refresh();
      document.body.dataset.ready = "true";
    },
  };
}

// --- the sample picture -------------------------------------------------------------------------

/** Sample inputs and preset kernels; none (and the error shown) when they cannot be read. */
export async function loadPresets(form) {
  try {
    return await getJSON("/api/conv/presets");
  } catch (error) {
    showErrors(form, error);
    return { kernels: [], inputs: [] };
  }
}

/** An <option>. */
export function option(value, text) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = text;
  return node;
}

/** Fill the `input` select with the samples and "random" (texts `${prefix}.<name>`). */
export function fillSampleSelect(form, state, presets, prefix) {
  const select = form.elements.namedItem("input");
  select.replaceChildren(
    ...presets.inputs.map((item) => option(item.name, t(`${prefix}.${item.name}`))),
    option("random", t(`${prefix}.random`)),
  );
  if (![...select.options].some((o) => o.value === state.get("input"))) {
    state.set({ input: presets.inputs[0]?.name ?? "random" });
  }
  select.value = state.get("input");
}

/**
 * What a user's change of `name` implies for the picture: input cell edits dropped when the
 * input they were made on changes, a sample's own channels and size.
 */
export function samplePatch(name, values, presets) {
  const patch = {};
  if (INPUT_SOURCE_FIELDS.has(name)) {
    const edits = values.edits.filter((edit) => edit.kind !== "i");
    if (edits.length !== values.edits.length) patch.edits = edits;
  }
  if (name === "input") {
    const sample = presets.inputs.find((item) => item.name === values.input);
    if (sample) Object.assign(patch, { channels: String(sample.channels), size: sample.values[0].length });
  }
  return patch;
}

/** The "new random input" button: a fresh seed, the random input, then `onUserChange("seed")`. */
export function bindNewRandom(button, state, onUserChange) {
  button.addEventListener("click", () => {
    state.set({ seed: newSeed(), input: "random" });
    onUserChange("seed");
  });
}
