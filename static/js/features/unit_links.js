// "Open in /conv": the unit's window and kernel as /conv's URL state (conv_state.js): an input
// of the window's size whose cells are edited to the window's values, one kernel edited to the
// learned one, the bias, no padding and stride 1, so /conv's first output cell is this unit's
// sum. Dilated taps are written next to each other (the products are the same). One input
// channel (the first shown) unless the layer reads exactly 3; /conv takes kernels up to 7.

const MAX_KERNEL = 7;
const MAX_EDITS = 256; // conv_state.js keeps at most this many edits

const exact = (value) => String(Number(value.toPrecision(9)));

/** The /conv URL for a conv unit, or null when /conv cannot hold that kernel. */
export function convLink(unit) {
  const d = unit.detail;
  const kh = d.rows.length;
  const kw = d.cols.length;
  if (kh !== kw || kh > MAX_KERNEL) return null;
  const size = Math.max(3, kh);
  const three = d.group_channels === 3 && d.in_channels.length === 3 && 2 * 3 * kh * kw + 1 <= MAX_EDITS;
  const channels = three ? [0, 1, 2] : [0];
  const edits = [];
  for (const k of channels) {
    for (let r = 0; r < size; r++) {
      for (let q = 0; q < size; q++) {
        const inside = r < kh && q < kw;
        edits.push(`i_${k}_${r}_${q}_${inside ? exact(d.window[k][r][q]) : 0}`);
      }
    }
    for (let r = 0; r < kh; r++) {
      for (let q = 0; q < kw; q++) edits.push(`k_0_${k}_${r}_${q}_${exact(d.kernel[k][r][q])}`);
    }
  }
  const bias = three && d.bias !== null ? d.bias : 0;
  if (bias) edits.push(`b_0_${exact(bias)}`);
  const query = new URLSearchParams({
    input: "random", size: String(size), channels: String(channels.length), kernel: String(kh),
    filters: "1", preset: "random", groups: "1", bias: bias ? "1" : "0", activation: "none", padding: "valid",
    stride: "1", dilation: "1", transposed: "0", step: "0", edits: edits.join("*"),
  });
  return `/conv?${query}`;
}
