// The training page's state (one declarative table, kept in the URL: a link reopens the same
// form, the same run on screen and the same runs compared), its presets, and the mapping from
// the form to the API's run config (POST /api/runs).

const MODELS = ["lenet5", "mlp", "tinyvgg", "alexnet", "resnet18", "mobilenet_v1", "mobilenet_v2", "googlenet"];
const ACTIVATIONS = ["default", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "silu"];
const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const RUN_ID = /^[0-9a-f]{12}$/;
const LAYER = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;

/** A list typed as text ("5, 6, 7") or kept as an array; invalid or too long → ignored. */
const textList = (valid, max) => ({
  type: "custom",
  parse: (text) => {
    const items = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
    return items.length <= max && items.every(valid) ? items : undefined;
  },
  format: (value) => (Array.isArray(value) ? value.join(",") : String(value)),
});
const runId = { type: "custom", parse: (text) => (text === "" || RUN_ID.test(text) ? text : undefined), format: String };
// The dataset: a bundled one by name, or a student's own "user:<id>", "user:<id>@<version>"
// (an earlier version a run trained on; without it, the current one).
const BUNDLED = ["mnist5k", "digits", "shapes"];
const USER_DATA = /^user:([0-9a-f]{16})(?:@([1-9]\d{0,8}))?$/;
const dataChoice = {
  type: "custom", parse: (text) => (BUNDLED.includes(text) || USER_DATA.test(text) ? text : undefined), format: String,
};
// Where a transfer run starts: a finished run's id, or weights "bundled:<model>" (shipped with
// cnnviz), "imagenet:<model>" (installed by `cnnviz weights get`) or "uploaded:<model>" (a model
// this browser uploaded: onnx_<id>, weights_<id>).
const WEIGHTS_SOURCE = /^(bundled|imagenet|uploaded):([a-z0-9_]{1,40})$/;
const sourceChoice = {
  type: "custom", parse: (text) => (text === "" || RUN_ID.test(text) || WEIGHTS_SOURCE.test(text) ? text : undefined),
  format: String,
};
// A confusion-matrix cell whose held-out pictures are open: "true:predicted", "" for none.
const CELL = /^(\d{1,3}):(\d{1,3})$/;
const cellChoice = { type: "custom", parse: (text) => (text === "" || CELL.test(text) ? text : undefined), format: String };

/** [true, predicted] of a cell value, or null. */
export function parseCell(text) {
  const match = CELL.exec(text || "");
  return match ? [Number(match[1]), Number(match[2])] : null;
}

export const PRESET_NAMES = ["lenet5_mnist", "mlp_vs_cnn", "sigmoid_vs_relu", "batch_norm", "transfer", "custom"];

export const TRAIN_STATE = [
  { name: "preset", type: "enum", values: PRESET_NAMES, default: "lenet5_mnist" },
  { name: "label", type: "string", default: "", maxLength: 80 },
  { name: "model", type: "enum", values: MODELS, default: "lenet5" },
  { name: "activation", type: "enum", values: ACTIVATIONS, default: "default" },
  { name: "bn", type: "bool", default: false },
  { name: "dropout", type: "float", default: 0, min: 0, max: 0.9 },
  { name: "init", type: "enum", values: ["default", "xavier", "he", "normal", "zeros"], default: "default" },
  { name: "data", ...dataChoice, default: "mnist5k" },
  { name: "limit", type: "int", default: 0, min: 0, max: 100000 }, // 0: every image
  { name: "classes", ...textList((d) => DIGITS.includes(d), 10), default: [] },
  { name: "per_class", type: "int", default: 0, min: 0, max: 10000 }, // 0: every training image
  { name: "optimizer", type: "enum", values: ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"], default: "adam" },
  { name: "lr", type: "float", default: 0.001, min: 0.00001, max: 10 },
  { name: "epochs", type: "int", default: 3, min: 1, max: 50 },
  { name: "batch", type: "int", default: 64, min: 1, max: 1024 },
  { name: "steps", type: "int", default: 0, min: 0, max: 10000 }, // 0: whole epochs
  { name: "pace", type: "float", default: 0, min: 0, max: 5 }, // slow mode: seconds per step
  { name: "seed", type: "int", default: 0, min: 0, max: 999999 },
  { name: "schedule", type: "enum", values: ["constant", "step", "cosine"], default: "constant" },
  { name: "momentum", type: "float", default: 0.9, min: 0, max: 0.99 },
  { name: "wd", type: "float", default: 0, min: 0, max: 1 },
  { name: "es", type: "int", default: 0, min: 0, max: 20 },
  { name: "shift", type: "int", default: 0, min: 0, max: 8 },
  { name: "rotation", type: "float", default: 0, min: 0, max: 45 },
  { name: "flip", type: "bool", default: false },
  { name: "from", ...sourceChoice, default: "" },
  { name: "fb", type: "bool", default: false }, // freeze the backbone: only the new head learns
  { name: "freeze", ...textList((name) => LAYER.test(name), 32), default: [] },
  { name: "head", type: "bool", default: true },
  { name: "run", ...runId, default: "" },
  { name: "compare", ...textList((id) => RUN_ID.test(id), 8), default: [] },
  { name: "log", type: "bool", default: false }, // loss charts on a log scale
  { name: "cell", ...cellChoice, default: "" },
];

/** The form fields (all but what is on screen: the run shown and the runs compared). */
export const FORM_FIELDS = TRAIN_STATE.map((field) => field.name).filter((name) => !["preset", "run", "compare", "log", "cell"].includes(name));

const BASE = {
  label: "", model: "lenet5", activation: "default", bn: false, dropout: 0, init: "default", data: "mnist5k",
  limit: 0, classes: [], per_class: 0, optimizer: "adam", lr: 0.001, epochs: 3, batch: 64, steps: 0, seed: 0,
  schedule: "constant", momentum: 0.9, wd: 0, es: 0, shift: 0, rotation: 0, flip: false, from: "", fb: false, freeze: [], head: true,
};
const FIVE_TO_NINE = ["5", "6", "7", "8", "9"];

/**
 * Presets: the form values they set, and the runs "Start" launches (one per variant, each a
 * patch of the form and a label key). The transfer preset runs in two stages: the pre-training
 * must finish (its checkpoint is the starting point) before the fine-tuning can start.
 */
export const PRESETS = {
  lenet5_mnist: { values: BASE, variants: null },
  mlp_vs_cnn: {
    values: { ...BASE, epochs: 3 },
    variants: [{ label: "train.variant.mlp", patch: { model: "mlp" } }, { label: "train.variant.cnn", patch: { model: "lenet5" } }],
  },
  sigmoid_vs_relu: {
    values: { ...BASE, optimizer: "momentum", lr: 0.01, epochs: 3 },
    variants: [{ label: "train.variant.sigmoid", patch: { activation: "sigmoid" } }, { label: "train.variant.relu", patch: { activation: "relu" } }],
  },
  batch_norm: {
    values: { ...BASE, activation: "sigmoid", optimizer: "momentum", lr: 0.05, epochs: 3 },
    variants: [{ label: "train.variant.no_bn", patch: { bn: false } }, { label: "train.variant.bn", patch: { bn: true } }],
  },
  transfer: {
    // The form shows the fine-tuning task: digits 5–9, ten training images per class; the two
    // local convolutions (stroke detectors) are kept, C5 and the classifier are retrained.
    // ReLU + batch norm, and a pre-training on shifted and rotated 0–4, give features that carry
    // over: measured in benchmarks/transfer.py (docs/PERFORMANCE.md, "Transfer learning").
    values: { ...BASE, activation: "relu", bn: true, classes: FIVE_TO_NINE, per_class: 10, epochs: 15, batch: 16, freeze: ["features.0", "features.3"] },
    pretrain: { label: "train.variant.pretrain", patch: { classes: ["0", "1", "2", "3", "4"], per_class: 0, epochs: 5, batch: 64, shift: 2, rotation: 10, freeze: [] } },
    variants: [{ label: "train.variant.finetune", patch: {}, fromPretrain: true }, { label: "train.variant.scratch", patch: { from: "", freeze: [] } }],
  },
  custom: { values: null, variants: null },
};

/** POST /api/runs body from form values. */
export function runRequest(values) {
  const own = USER_DATA.exec(values.data);
  const data = own ? { name: "user", dataset: own[1] } : { name: values.data };
  if (own && own[2]) data.dataset_version = Number(own[2]);
  if (values.limit > 0) data.limit = values.limit;
  if (values.classes.length > 0) data.classes = values.classes.map(Number);
  if (values.per_class > 0) data.train_per_class = values.per_class;
  // LeNet-5 reads 32×32: MNIST's 28×28 digits are centred in a black frame as in LeCun et al. (1998)
  if (values.model === "lenet5" && values.data === "mnist5k") data.fit = "pad";
  const body = {
    label: values.label, model: values.model, data,
    activation: values.activation === "default" ? null : values.activation,
    batch_norm: values.bn, dropout: values.dropout, init: values.init,
    optimizer: values.optimizer, lr: values.lr, momentum: values.momentum, weight_decay: values.wd,
    schedule: values.schedule, epochs: values.epochs, batch_size: values.batch, seed: values.seed,
    early_stopping: values.es, augment: { shift: values.shift, rotation: values.rotation, flip: values.flip },
  };
  if (values.steps > 0) body.max_steps_per_epoch = values.steps;
  if (values.pace > 0) body.step_delay_s = values.pace;
  if (values.from) {
    const weights = WEIGHTS_SOURCE.exec(values.from);
    const source = weights ? { weights: weights[1], model: weights[2] } : { run_id: values.from };
    body.init_from = { ...source, freeze: values.freeze, freeze_backbone: values.fb, replace_head: values.head };
  }
  return body;
}

/** API field names (422 locations) → the form control that shows the message. */
export const FIELD_ALIASES = {
  batch_size: "batch", max_steps_per_epoch: "steps", step_delay_s: "pace", batch_norm: "bn", weight_decay: "wd",
  early_stopping: "es", augment: "shift", "data.name": "data", "data.channels": "data",
  "init_from.run_id": "from", "init_from.freeze": "freeze", "init_from.replace_head": "head", init_from: "from",
  "init_from.model": "from", "init_from.weights": "from", "init_from.freeze_backbone": "fb",
  "data.dataset": "data", "data.dataset_version": "data", "data.image_size": "data",
};
