// What the explorer views (conv_view.js, pool_view.js) do alike with the shared grids over a
// trace's steps: the cells of a window, the rows and columns the windows reach, output cells
// filling in step by step, the step a cell stands for, one channel's grid highlighted. Steps are
// ordered channel-major (channel, then row, then column), as every trace of the API orders them.

import { t } from "./i18n.js";
import { formatNumber } from "./format.js";

/** Every [row, col] of a window from its rows and columns. */
export const windowCells = (rows, cols) => rows.flatMap((r) => cols.map((c) => [r, c]));

/** A channel's caption: R, G, B for a colour picture, "channel n" otherwise (`prefix`.channel). */
export function channelName(prefix, c, channels) {
  return channels === 3 ? t(`${prefix}.channel.rgb.${c}`) : t(`${prefix}.channel`, { n: c + 1 });
}

/** The widest number of `values` in characters, so a grid's cells keep their width while filling. */
export function widestNumber(values) {
  return Math.max(...values.map((v) => formatNumber(v).length));
}

/**
 * Rows and columns to display: the box [top, left, bottom, right] (inclusive) grown to every
 * row and column a step's window reaches (padding, a ceil-mode overhang, a transposed scatter).
 */
export function stepsExtent(steps, [top, left, bottom, right]) {
  for (const step of steps) {
    top = Math.min(top, step.rows[0]);
    left = Math.min(left, step.cols[0]);
    bottom = Math.max(bottom, step.rows[step.rows.length - 1]);
    right = Math.max(right, step.cols[step.cols.length - 1]);
  }
  return { origin: [top, left], rows: bottom - top + 1, cols: right - left + 1 };
}

/**
 * Show the first `count` output cells of `output` (C×H×W) in `grids`, one per channel, and hide
 * the rest; `shown` is how many show now. Only the cells in between are painted. Returns count.
 */
export function revealOutputs(grids, output, shown, count) {
  const [height, width] = [output[0].length, output[0][0].length];
  const perChannel = height * width;
  const paint = (i, visible) => {
    const c = Math.floor(i / perChannel);
    const y = Math.floor((i % perChannel) / width);
    const x = i % width;
    grids[c].setValue(y, x, visible ? output[c][y][x] : null);
  };
  for (let i = shown; i < count; i++) paint(i, true);
  for (let i = count; i < shown; i++) paint(i, false);
  return count;
}

/** The step of cell (r, x) of channel c in an H×W plane; null off the plane (or r null). */
export function stepAt(c, r, x, height, width) {
  if (r === null || r < 0 || x < 0 || r >= height || x >= width) return null;
  return c * height * width + r * width + x;
}

/** Highlight `cells` as `name` in the grid of `channel`, nothing in the others. */
export function highlightChannel(grids, name, channel, cells) {
  grids.forEach((grid, c) => grid.highlight(name, c === channel ? cells : []));
}
