// The numbers the explorer sends to /api/conv/trace, made from the page state: a sample input
// (resized to the chosen size) or a seeded random one, preset or seeded random kernels, a seeded
// bias, then the user's cell edits on top. Pure functions of (state, presets).

import { randomInt, seededRandom } from "./random.js";

const RANDOM = "random";

/** Nearest-neighbour resize of one H×W channel to size×size (samples come in their own size). */
function resize(channel, size) {
  const height = channel.length;
  const width = channel[0].length;
  return Array.from({ length: size }, (_, y) =>
    Array.from({ length: size }, (_, x) => channel[Math.floor((y * height) / size)][Math.floor((x * width) / size)]),
  );
}

/** Grey from colour (mean of the channels) or colour from grey (the same plane three times). */
function adaptChannels(planes, channels) {
  if (planes.length === channels) return planes;
  if (channels === 1) {
    const [first] = planes;
    const mean = first.map((row, y) =>
      row.map((_, x) => planes.reduce((sum, plane) => sum + plane[y][x], 0) / planes.length),
    );
    return [mean.map((row) => row.map((v) => Math.round(v * 100) / 100))];
  }
  return Array.from({ length: channels }, (_, c) => planes[c % planes.length]);
}

function applyEdits(array, edits, kind) {
  for (const edit of edits) {
    if (edit.kind !== kind) continue;
    let target = array;
    const path = edit.at;
    for (let i = 0; i < path.length - 1 && target; i++) target = target[path[i]];
    if (target && path[path.length - 1] < target.length) target[path[path.length - 1]] = edit.value;
  }
  return array;
}

/** C×H×W input: the named sample or seeded random integers 0–9. */
export function buildInput(values, presets) {
  const channels = Number(values.channels);
  const size = values.size;
  let planes;
  const sample = presets.inputs.find((item) => item.name === values.input);
  if (sample) {
    planes = adaptChannels(sample.values.map((plane) => resize(plane, size)), channels);
  } else {
    const next = seededRandom(values.seed);
    planes = Array.from({ length: channels }, () =>
      Array.from({ length: size }, () => Array.from({ length: size }, () => randomInt(next, 0, 9))),
    );
  }
  return applyEdits(structuredClone(planes), values.edits, "i");
}

/** A k×k kernel from a preset of another size: centred, zero-filled or cropped around the centre. */
function fitKernel(kernel, size) {
  const offset = Math.floor((kernel.length - size) / 2);
  return Array.from({ length: size }, (_, y) =>
    Array.from({ length: size }, (_, x) => kernel[y + offset]?.[x + offset] ?? 0),
  );
}

/** The preset of each filter: the chosen list, "random" for filters without a choice. */
export function presetNames(values) {
  return Array.from({ length: values.filters }, (_, o) => values.preset[o] || RANDOM);
}

/**
 * O×Cg×k×k weights, filter-major (Cg = C / groups): a preset kernel repeated on each channel it
 * reads, or seeded random integers −1..1 (seed + filter number, so filters differ).
 */
export function buildWeights(values, presets) {
  const channelsPerGroup = Number(values.channels) / Number(values.groups);
  const size = values.kernel;
  const weights = presetNames(values).map((name, o) => {
    const preset = presets.kernels.find((item) => item.name === name);
    if (preset) {
      const kernel = fitKernel(preset.values, size);
      return Array.from({ length: channelsPerGroup }, () => structuredClone(kernel));
    }
    const next = seededRandom(values.seed * 131 + o + 7);
    return Array.from({ length: channelsPerGroup }, () =>
      Array.from({ length: size }, () => Array.from({ length: size }, () => randomInt(next, -1, 1))),
    );
  });
  return applyEdits(weights, values.edits, "k");
}

/** [O] bias of seeded integers −3..3, or null without bias. */
export function buildBias(values) {
  if (!values.bias) return null;
  const next = seededRandom(values.seed * 977 + 3);
  const bias = Array.from({ length: values.filters }, () => randomInt(next, -3, 3));
  return applyEdits(bias, values.edits, "b");
}

/**
 * The weights in torch's layout: O×Cg×k×k for conv2d as they are; for conv_transpose2d
 * C×(O/groups)×k×k, where input channel c of group g holds, for each filter o' of that group,
 * weights[g·O/groups + o'][c − g·Cg].
 */
export function torchKernels(weights, values) {
  if (!values.transposed) return weights;
  const groups = Number(values.groups);
  const channels = Number(values.channels);
  const perGroupOut = weights.length / groups;
  const perGroupIn = channels / groups;
  if (!Number.isInteger(perGroupOut)) return weights; // the API names the problem (groups)
  return Array.from({ length: channels }, (_, c) => {
    const group = Math.floor(c / perGroupIn);
    return Array.from({ length: perGroupOut }, (_, o) => weights[group * perGroupOut + o][c - group * perGroupIn]);
  });
}

/** Body of POST /api/conv/shape for the state. */
export function shapeRequest(values) {
  return {
    channels: Number(values.channels),
    height: values.size,
    width: values.size,
    kernel_size: values.kernel,
    stride: values.stride,
    padding: values.padding,
    dilation: values.dilation,
    out_channels: values.filters,
    groups: Number(values.groups),
    bias: values.bias,
    transposed: values.transposed,
    output_padding: values.outpad,
  };
}

/** Body of POST /api/conv/trace for the state. */
export function traceRequest(values, presets) {
  const weights = buildWeights(values, presets);
  return {
    input: buildInput(values, presets),
    kernels: torchKernels(weights, values),
    bias: buildBias(values),
    stride: values.stride,
    padding: values.padding,
    dilation: values.dilation,
    groups: Number(values.groups),
    activation: values.activation === "none" ? null : values.activation,
    transposed: values.transposed,
    output_padding: values.outpad,
  };
}
