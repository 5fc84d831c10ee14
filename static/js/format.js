// Number formatting shared by every view. Numbers are written the same way in every language
// (a formula must read identically in Korean and English), so no locale formatting here.

const FLOAT_NOISE = 1e-12;

/** Shown for a value the server sent as null because it is ±inf or NaN. */
export const NOT_A_NUMBER = "—";

/** Compact form for grid cells: integers as they are, others rounded to `digits` decimals. */
export function formatNumber(value, digits = 2) {
  if (value === null || value === undefined) return "";
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  // Sums like 0.41 + 0.44 + 0.21 − 0.53 − 0.16 − 0.37 leave float64 noise (−5.6e-17): that is 0.
  if (Math.abs(value) < FLOAT_NOISE) return "0";
  const scale = 10 ** digits;
  let rounded = Math.round(value * scale) / scale;
  if (rounded === 0) {
    // Keep tiny non-zero values visibly non-zero (e.g. a sigmoid tail) instead of printing 0.
    return value.toPrecision(1);
  }
  if (Object.is(rounded, -0)) rounded = 0;
  return String(rounded);
}

/** Longer form for written-out arithmetic: up to `digits` decimals, trailing zeros dropped. */
export function formatExact(value, digits = 4) {
  return formatNumber(value, digits);
}

/** A fraction as a percentage with up to `digits` decimals ("83%", "12.5%"); null (the
 * server's ±inf or NaN) or none → `missing`. */
export function formatPercent(fraction, digits = 0, missing = NOT_A_NUMBER) {
  return Number.isFinite(fraction) ? `${formatNumber(100 * fraction, digits)}%` : missing;
}

/** Numbers with thousands separators (parameter counts, MACs). */
export function formatCount(value) {
  return Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A shape as one text: [6, 28, 28] → "6×28×28"; no shape (a layer that did not run) →
 * `missing`. */
export function shapeText(shape, missing = "–") {
  return shape ? shape.join("×") : missing;
}

/** A per-axis {height, width} pair as one text: "51" when both agree, "51×43" otherwise. */
export function formatPair({ height, width }, digits = 2) {
  const [h, w] = [formatNumber(height, digits), formatNumber(width, digits)];
  return h === w ? h : `${h}×${w}`;
}
