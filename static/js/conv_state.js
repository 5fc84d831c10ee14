// The convolution explorer's state: one declarative table, serialised to the URL on every change
// (seed and cell edits included), so a link reproduces exactly the view a teacher showed.

import { defaultSpeed } from "./player.js";

const NAME = /^[a-z][a-z0-9_]{0,31}$/;
const MAX_EDITS = 256;

/** padding: "valid", "same" or a number of zeros per side (0 reads as "valid"). */
const paddingCodec = {
  parse(text) {
    if (text === "valid" || text === "same") return text;
    if (!/^\d+$/.test(text)) return undefined;
    const value = Number(text);
    if (value === 0) return "valid";
    return value <= 5 ? value : undefined;
  },
  format: (value) => String(value),
};

/**
 * Cell edits on top of the generated input / kernels / bias, as a compact list:
 *   i_c_y_x_v (input), k_o_c_y_x_v (kernel of filter o), b_o_v (bias), joined by "*".
 * Only characters a query string keeps unescaped, so links stay readable.
 */
const ARITY = { i: 3, k: 4, b: 1 };
const editsCodec = {
  parse(text) {
    if (text === "") return [];
    const edits = [];
    for (const entry of text.split("*").slice(0, MAX_EDITS)) {
      const [kind, ...parts] = entry.split("_");
      if (!(kind in ARITY) || parts.length !== ARITY[kind] + 1) continue;
      const numbers = parts.map(Number);
      if (!numbers.every(Number.isFinite)) continue;
      const at = numbers.slice(0, -1);
      if (!at.every((n) => Number.isInteger(n) && n >= 0)) continue;
      edits.push({ kind, at, value: numbers[numbers.length - 1] });
    }
    return edits;
  },
  format: (edits) => edits.map((e) => [e.kind, ...e.at, e.value].join("_")).join("*"),
};

export const CONV_STATE = [
  { name: "input", type: "string", default: "digit", maxLength: 32 },
  { name: "size", type: "int", default: 8, min: 3, max: 32 },
  { name: "channels", type: "enum", values: ["1", "3"], default: "1" },
  { name: "seed", type: "int", default: 1, min: 0, max: 999999 },
  { name: "kernel", type: "int", default: 3, min: 1, max: 7 },
  { name: "filters", type: "int", default: 1, min: 1, max: 6 },
  {
    name: "preset",
    type: "custom",
    default: ["vertical_edge"],
    parse: (text) => (text === "" ? [] : text.split(",").slice(0, 6).filter((n) => NAME.test(n))),
    format: (names) => names.join(","),
  },
  { name: "groups", type: "enum", values: ["1", "3"], default: "1" },
  { name: "bias", type: "bool", default: false },
  {
    name: "activation",
    type: "enum",
    values: ["none", "relu", "leaky_relu", "sigmoid", "tanh"],
    default: "none",
  },
  { name: "padding", type: "custom", default: "valid", ...paddingCodec },
  { name: "stride", type: "int", default: 1, min: 1, max: 4 },
  { name: "dilation", type: "int", default: 1, min: 1, max: 4 },
  { name: "transposed", type: "bool", default: false },
  { name: "outpad", type: "int", default: 0, min: 0, max: 3 },
  { name: "edits", type: "custom", default: [], ...editsCodec },
  { name: "step", type: "int", default: 0, min: 0, max: 1000000 },
  { name: "speed", type: "float", default: defaultSpeed(), min: 0.5, max: 60 },
];

/** A change of these makes earlier input edits meaningless, so they are dropped. */
export const INPUT_SOURCE_FIELDS = new Set(["input", "size", "channels", "seed"]);
/** ... and these the kernel and bias edits. */
export const KERNEL_SOURCE_FIELDS = new Set(["kernel", "filters", "preset", "groups", "channels", "seed"]);
