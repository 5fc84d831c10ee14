// Colour-blind-safe colour maps for cell backgrounds. Sequential values use viridis (van der Walt &
// Smith, matplotlib 2.0); signed values use a blue–white–red diverging map (ColorBrewer RdBu),
// centred on zero so the sign of a number is its hue.

const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
const RDBU = [
  [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43],
];

function sample(table, t) {
  const x = Math.min(1, Math.max(0, t)) * (table.length - 1);
  const i = Math.min(table.length - 2, Math.floor(x));
  const f = x - i;
  return table[i].map((channel, k) => channel + (table[i + 1][k] - channel) * f);
}

/** The value range of numbers, widened to hold 0 when they are all of one sign and mixed. */
export function rangeOf(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value === null || value === undefined || !Number.isFinite(value)) continue;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  if (min === Infinity) return { min: 0, max: 1 };
  return { min, max };
}

/**
 * [r, g, b] for `value` in `range`: diverging around 0 when the range crosses zero, viridis
 * otherwise. `soften` blends towards white so the numbers on top stay readable.
 */
export function colorFor(value, range, soften = 0.25) {
  let rgb;
  if (range.min < 0 && range.max > 0) {
    const extent = Math.max(-range.min, range.max);
    rgb = sample(RDBU, 0.5 + value / (2 * extent));
  } else {
    const span = range.max - range.min;
    rgb = sample(VIRIDIS, span > 0 ? (value - range.min) / span : 0.5);
  }
  return rgb.map((channel) => Math.round(channel + (255 - channel) * soften));
}

/** Relative luminance (WCAG 2) of [r, g, b], to pick dark or light text on a background. */
export function luminance([r, g, b]) {
  const linear = (c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}
