// The block tree the architecture diagram draws, built from a summary (/api/models/{name}/summary):
// its layers (dotted module paths) nest into the model's container modules (`summary.blocks`), and
// a container whose forward joins paths (`block.merge`: a residual addition or an Inception
// concatenation) gets its branches side by side. A weight layer with the batch norm, activation
// and dropout right after it reads as one unit ("conv 3×3 · BN · ReLU"), as in the papers' figures.
// No DOM here: arch_diagram.js draws the tree.

const WEIGHT_TYPES = new Set(["Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear"]);
// Layers that read as part of the weight layer before them: normalisation, activation, dropout.
const COMPANION = new RegExp("^(BatchNorm\\dd|LayerNorm|GroupNorm|ReLU6?|LeakyReLU|ELU|GELU|SiLU|"
  + "Sigmoid|Tanh|Hardswish|Hardsigmoid|Mish|Softmax|Dropout(\\dd)?)$");
// Types written short in the diagram ("Conv 3×3 /2", "BN", "MaxPool 3×3 /2").
const SHORT_TYPES = {
  Conv2d: "Conv", ConvTranspose2d: "ConvT", BatchNorm2d: "BN", BatchNorm1d: "BN",
  AdaptiveAvgPool2d: "AdaptiveAvgPool", AdaptiveMaxPool2d: "AdaptiveMaxPool",
  MaxPool2d: "MaxPool", AvgPool2d: "AvgPool",
};
// Containers whose class says nothing a student needs (the layers inside say it).
const PLAIN_CONTAINERS = new Set(["Sequential", "ModuleList", "ModuleDict"]);

export const sumOf = (rows, key) => rows.reduce((total, row) => total + row[key], 0);

/** "depthwise" (groups = input channels > 1), "pointwise" (1×1, groups 1) or null. */
export function convKind(row) {
  if (!row.type.startsWith("Conv") || !row.kernel_size || !row.input_shape) return null;
  const channels = row.input_shape[0];
  if (row.groups > 1 && row.groups === channels) return "depthwise";
  if (row.kernel_size[0] === 1 && row.kernel_size[1] === 1 && row.groups === 1) return "pointwise";
  return null;
}

/** A layer's operation in a few characters: "Conv 3×3 /2", "dw Conv 3×3", "Linear", "ReLU". */
export function operation(row) {
  const type = SHORT_TYPES[row.type] || row.type;
  if (!row.kernel_size) return type;
  const [kh, kw] = row.kernel_size;
  const [sh, sw] = row.stride;
  const stride = sh === 1 && sw === 1 ? "" : ` /${sh === sw ? sh : `${sh}×${sw}`}`;
  const kind = convKind(row);
  const prefix = kind === "depthwise" ? "dw " : kind === "pointwise" ? "pw " : "";
  return `${prefix}${type} ${kh}×${kw}${stride}`;
}

/** The weight and pooling layers of a subtree in order, short: "pw 1×1 → dw 3×3 /2 → pw 1×1". */
export function weightPath(rows, limit = 4) {
  const weights = rows.filter((row) => WEIGHT_TYPES.has(row.type) || /^(Max|Avg)Pool/.test(row.type));
  if (weights.length === 0 || weights.length > limit) return "";
  return weights.map((row) => operation(row).replace(/^(dw |pw )?Conv /, "$1")).join(" → ");
}

/** A unit's layers in a few words: "Conv 3×3 · BN · ReLU". */
export function unitOperation(rows) {
  const short = (row) => (WEIGHT_TYPES.has(row.type) ? operation(row) : SHORT_TYPES[row.type] || row.type);
  return rows.map(short).join(" · ");
}

export const isWeight = (row) => WEIGHT_TYPES.has(row.type);

// "conv1" inside "layer1.0"; a bare index reads better with its container: "features.3".
function relative(name, parent) {
  const own = parent ? name.slice(parent.length + 1) : name;
  return /^\d+$/.test(own) ? name.split(".").slice(-2).join(".") : own;
}

function layerItem(row, parent) {
  return {
    kind: "layer", key: row.name, name: row.name, label: relative(row.name, parent),
    type: row.type, rows: [row], params: row.params, macs: row.macs, output: row.output_shape,
    conv: convKind(row),
  };
}

function groupItem(name, parent, rows, blocks, depth) {
  const block = blocks.get(name);
  const item = {
    kind: "group", key: name, name, label: relative(name, parent),
    type: PLAIN_CONTAINERS.has(block?.type) ? "" : block?.type || "",
    rows, params: sumOf(rows, "params"), macs: sumOf(rows, "macs"), depth,
    output: block ? block.output_shape : lastOutput(rows), merge: null, children: [],
  };
  if (block?.merge) {
    item.merge = mergeOf(block.merge, name, rows, blocks, depth);
  } else {
    item.children = itemsOf(name, rows, blocks, depth + 1);
    // A container holding one thing opens onto that thing's parts: BasicConv2d (one unit: conv ·
    // BN · ReLU) onto its layers, an InvertedResidual onto the three units of its `conv`.
    const only = item.children.length === 1 ? item.children[0] : null;
    if (only?.synthetic || (only?.kind === "group" && !only.merge)) item.children = only.children;
  }
  // Opened by default: the model's stages (layer1, features, classifier); a container whose
  // paths join always shows its branches (in one box each until opened).
  item.unit = !item.merge && item.children.every((child) => child.kind === "layer")
    && item.rows.filter((row) => WEIGHT_TYPES.has(row.type)).length <= 1;
  item.openByDefault = !item.unit && !item.merge && depth === 0;
  return item;
}

function lastOutput(rows) {
  const ran = rows.filter((row) => row.output_shape);
  return ran.length ? ran[ran.length - 1].output_shape : null;
}

function mergeOf(merge, name, rows, blocks, depth) {
  const byName = new Map(rows.map((row) => [row.name, row]));
  const pick = (names) => names.map((layer) => byName.get(layer)).filter(Boolean);
  const used = new Set([...merge.before, ...merge.after, ...merge.branches.flatMap((b) => b.layers)]);
  const rest = rows.filter((row) => !used.has(row.name)); // e.g. layers that did not run
  const branches = merge.branches.map((branch, index) => {
    const own = pick(branch.layers);
    return {
      index, rows: own, output: branch.output_shape,
      items: itemsOf(name, own, blocks, depth + 1),
      identity: own.every((row) => row.type === "Identity"),
      params: sumOf(own, "params"), macs: sumOf(own, "macs"),
    };
  });
  if (merge.kind === "add") {
    // The main path is the one with most layers; the others are shortcuts (drawn beside it).
    const main = branches.reduce((best, b) => (b.rows.length > best.rows.length ? b : best));
    for (const branch of branches) branch.role = branch === main ? "main" : "shortcut";
    branches.sort((a, b) => (a.role === "main" ? -1 : b.role === "main" ? 1 : a.index - b.index));
  } else {
    for (const branch of branches) branch.role = "branch";
  }
  return {
    kind: merge.kind, output: merge.output_shape, branches,
    before: itemsOf(name, pick(merge.before), blocks, depth + 1),
    after: itemsOf(name, [...pick(merge.after), ...rest], blocks, depth + 1),
  };
}

/** The items directly under `parent`: layers and containers, consecutive rows grouped by name. */
export function itemsOf(parent, rows, blocks, depth = 0) {
  const runs = [];
  for (const row of rows) {
    const own = parent ? row.name.slice(parent.length + 1) : row.name;
    const key = row.name === parent ? row.name : own.split(".")[0];
    const name = row.name === parent || !parent ? key : `${parent}.${key}`;
    const last = runs[runs.length - 1];
    if (last && last.name === name && row.name !== parent) last.rows.push(row);
    else runs.push({ name, rows: [row] });
  }
  const items = runs.map(({ name, rows: own }) =>
    own.length === 1 && own[0].name === name
      ? layerItem(own[0], parent)
      : groupItem(name, parent, own, blocks, depth));
  return foldUnits(items, parent, depth);
}

/** A weight layer and the normalisation / activation / dropout layers right after it: one unit. */
function foldUnits(items, parent, depth) {
  const folded = [];
  for (let i = 0; i < items.length; i += 1) {
    const item = items[i];
    let end = i + 1;
    if (item.kind === "layer" && WEIGHT_TYPES.has(item.type)) {
      const follows = (next) => next && next.kind === "layer" && COMPANION.test(next.type);
      while (follows(items[end])) end += 1;
    }
    if (end === i + 1) {
      folded.push(item);
      continue;
    }
    const children = items.slice(i, end);
    const rows = children.flatMap((child) => child.rows);
    folded.push({
      kind: "group", key: `${item.name}*`, name: item.name, label: item.label, type: "",
      rows, params: sumOf(rows, "params"), macs: sumOf(rows, "macs"), depth,
      output: children[children.length - 1].output, merge: null, children,
      unit: true, synthetic: true, openByDefault: false, conv: item.conv,
    });
    i = end - 1;
  }
  return folded;
}

/** The whole model as one tree; `summary.blocks` may be empty (then layers nest by name only). */
export function buildTree(summary) {
  const blocks = new Map((summary.blocks || []).map((block) => [block.name, block]));
  return itemsOf("", summary.layers, blocks, 0);
}

/** Every expandable item of the tree (for "open all" / "close all"), depth first. */
export function expandable(items, out = []) {
  for (const item of items) {
    if (item.kind !== "group") continue;
    out.push(item);
    expandable(item.children, out);
    if (item.merge) {
      expandable(item.merge.before, out);
      for (const branch of item.merge.branches) expandable(branch.items, out);
      expandable(item.merge.after, out);
    }
  }
  return out;
}
