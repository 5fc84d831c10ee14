// The /receptive-field page state: one declarative table, serialised to the URL on every change,
// so a link reopens the same model, picture, weights, layer and unit. y = x = -1 stands for "the
// centre of the layer" until the layer's size is known. An uploaded picture cannot travel in a
// URL: `sample` is then empty and a reload falls back to the default sample.

export const DEFAULT_SAMPLE = "china";

export const RF_STATE = [
  { name: "model", type: "string", default: "resnet18", maxLength: 40 },
  { name: "sample", type: "string", default: DEFAULT_SAMPLE, maxLength: 40 },
  { name: "weights", type: "enum", values: ["trained", "initialisation"], default: "trained" },
  { name: "run", type: "string", default: "", maxLength: 12 },
  { name: "layer", type: "string", default: "", maxLength: 200 },
  { name: "y", type: "int", default: -1, min: -1, max: 4095 },
  { name: "x", type: "int", default: -1, min: -1, max: 4095 },
  { name: "erf", type: "bool", default: true },
  { name: "growth", type: "enum", values: ["constant", "doubling"], default: "constant" },
];

// Fields whose change needs the layer table again (the model's geometry).
export const MODEL_FIELDS = new Set(["model"]);
// Fields whose change needs a new effective field (the picture, the weights or the unit).
export const ERF_FIELDS = new Set(["model", "sample", "weights", "run", "layer", "y", "x"]);
