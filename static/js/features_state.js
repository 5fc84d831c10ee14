// The /features page state: one declarative table, serialised to the URL on every change, so a
// link reopens the same picture, model, options, layer and channel. An uploaded picture cannot
// travel in a URL: `sample` is then empty and a reload falls back to the default sample.

import { UNIT_STATE } from "./features/unit_state.js";

export const DEFAULT_SAMPLE = "china";

export const FEATURES_STATE = [
  { name: "model", type: "string", default: "tinyvgg", maxLength: 40 },
  { name: "sample", type: "string", default: DEFAULT_SAMPLE, maxLength: 40 },
  { name: "mode", type: "enum", values: ["learned", "handcrafted"], default: "learned" },
  // Whose weights: the model's bundled ones, or the newest checkpoint of training run `run`.
  { name: "weights", type: "enum", values: ["bundled", "run"], default: "bundled" },
  { name: "run", type: "string", default: "", maxLength: 12 },
  // A held-out picture of run `run` (its index), opened from /train's confusion matrix.
  { name: "heldout", type: "int", default: -1, min: -1, max: 10000000 },
  { name: "colormap", type: "enum", values: ["viridis", "magma", "gray"], default: "viridis" },
  { name: "normalise", type: "enum", values: ["per_channel", "per_layer"], default: "per_channel" },
  { name: "layer", type: "string", default: "", maxLength: 200 },
  { name: "channel", type: "int", default: 0, min: 0, max: 4095 },
  ...UNIT_STATE, // a unit's computation and why this prediction (features/unit_state.js)
];

// Fields whose change needs a new answer from the server; the others only redraw.
export const REQUEST_FIELDS = new Set(["model", "sample", "mode", "normalise", "weights", "run"]);
