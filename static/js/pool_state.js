// The pooling explorer's state: one declarative table, serialised to the URL on every change.
// The input fields (sample, size, channels, seed, cell edits) are the convolution explorer's own
// definitions, so a picture is described the same way on both pages.

import { CONV_STATE } from "./conv_state.js";

const INPUT_FIELDS = new Set(["input", "size", "channels", "seed", "edits"]);

export const POOL_STATE = [
  ...CONV_STATE.filter((field) => INPUT_FIELDS.has(field.name)),
  { name: "kind", type: "enum", values: ["max", "avg", "l2", "global_avg"], default: "max" },
  { name: "kernel", type: "int", default: 2, min: 1, max: 6 },
  { name: "stride", type: "int", default: 0, min: 0, max: 6 }, // 0: the kernel size (torch's default)
  { name: "padding", type: "int", default: 0, min: 0, max: 3 },
  { name: "ceil", type: "bool", default: false },
  { name: "include_pad", type: "bool", default: true },
  { name: "backward", type: "bool", default: false },
  { name: "step", type: "int", default: 0, min: 0, max: 1000000 },
  { name: "speed", type: "float", default: 4, min: 0.5, max: 60 },
];
