// The softmax-and-loss explorer's state (one table, in the URL) and the request it makes: the
// logits or probabilities, the target (a class, softened by label smoothing into a distribution),
// temperature, log base and the focal loss's γ and α.

const MAX_CLASSES = 10;
const LOGIT_LIMIT = 10;

/** A comma-separated list of at most MAX_CLASSES finite numbers in [low, high]. */
function numberList(low, high) {
  return {
    parse(text) {
      const parts = text.split(",").slice(0, MAX_CLASSES).map(Number);
      if (parts.length === 0 || !parts.every(Number.isFinite)) return undefined;
      return parts.map((v) => Math.min(high, Math.max(low, v)));
    },
    format: (values) => values.map((v) => String(Number(v.toFixed(4)))).join(","),
  };
}

/** α: "none" (no class weighting) or a number in [0, 1]. */
const alphaCodec = {
  parse(text) {
    if (text === "none") return "none";
    const value = Number(text);
    return text.trim() !== "" && value >= 0 && value <= 1 ? value : undefined;
  },
  format: (value) => String(value),
};

export const LOSS_STATE = [
  { name: "kind", type: "enum", values: ["cross_entropy", "binary_cross_entropy", "focal"], default: "cross_entropy" },
  { name: "mode", type: "enum", values: ["logits", "probs"], default: "logits" },
  { name: "classes", type: "int", default: 3, min: 2, max: MAX_CLASSES },
  { name: "logits", type: "custom", default: [2, 1, 0.1], ...numberList(-LOGIT_LIMIT, LOGIT_LIMIT) },
  { name: "probs", type: "custom", default: [0.7, 0.2, 0.1], ...numberList(0, 1) },
  { name: "target", type: "int", default: 0, min: 0, max: MAX_CLASSES - 1 },
  { name: "smoothing", type: "float", default: 0, min: 0, max: 0.5 },
  { name: "temperature", type: "float", default: 1, min: 0.1, max: 10 },
  { name: "base", type: "enum", values: ["e", "2", "10"], default: "e" },
  { name: "gamma", type: "float", default: 2, min: 0, max: 5 },
  { name: "alpha", type: "custom", default: "none", ...alphaCodec },
];

export { LOGIT_LIMIT };

/** How many scores the loss takes: one logit (binary) or one per class. */
export function scoreCount(values) {
  return values.kind === "binary_cross_entropy" ? 1 : values.classes;
}

/** `list` cut or extended (with `fill`) to `count` entries. */
export function resized(list, count, fill) {
  return Array.from({ length: count }, (_, i) => list[i] ?? fill);
}

/** The target: a class index, or with label smoothing ε the distribution (1 − ε)·onehot + ε/K. */
export function targetOf(values) {
  const binary = values.kind === "binary_cross_entropy";
  const classes = binary ? 2 : values.classes;
  const index = Math.min(values.target, classes - 1);
  if (values.smoothing === 0) return index;
  const soft = Array.from({ length: classes }, (_, i) => (i === index ? 1 - values.smoothing : 0) + values.smoothing / classes);
  return binary ? soft[1] : soft;
}

/** Body of POST /api/functions/loss for the state. */
export function lossRequest(values) {
  const count = scoreCount(values);
  const body = {
    kind: values.kind,
    target: targetOf(values),
    log_base: values.base,
    temperature: values.temperature,
  };
  if (values.mode === "probs" && values.kind !== "binary_cross_entropy") body.probs = resized(values.probs, count, 0);
  else body.logits = resized(values.logits, count, 0);
  if (values.kind === "focal") {
    body.gamma = values.gamma;
    body.alpha = values.alpha === "none" ? null : values.alpha;
  }
  return body;
}
