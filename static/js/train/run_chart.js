// Training curves (loss, accuracy, runs compared) drawn by uPlot (https://github.com/leeoniya/uPlot,
// installed from npm by `make vendor` into build/npm and served under /static/vendor/uplot/): a
// canvas redraw of thousands of points in a few milliseconds, with what static/js/chart.js (SVG,
// one DOM node per line) does not have — a hover read-out of every series at the step under the
// pointer, zoom by dragging across the plot (double-click zooms out), and a log scale for the
// loss. Same interface as chart.js's createLineChart: update({x, series: [{name, values}]}).
// Figures: benchmarks/train_charts.py, docs/PERFORMANCE.md ("Training charts").

import uPlot from "../../vendor/uplot/uPlot.esm.js";
import { formatNumber } from "../format.js";
import { onTypeScaleChange, typeScale } from "../type_scale.js";

// Sizes in px at the page's normal type size; every one is multiplied by typeScale() (presenter
// mode's larger type, or a reader's larger default font), like the rem-sized text around them.
const HEIGHT = 260;
const DASHES = [[], [7, 4], [2, 3], [10, 3, 2, 3], [], [12, 5], [1, 2], [6, 2, 6, 6]];
const FIXED = [null, null, "#2b9348", "#9c36b5", "#c92a2a", "#495057", "#0b7285", "#e67700"];
const TICK_GAP = 6; // px between tick labels and the axis title
const LABEL_SIZE = 22; // px reserved for an axis title, outside the tick labels
const TICK_FONT = 11; // px, the tick labels
const LABEL_FONT = 12; // px, the axis titles
const X_TICK_ROOM = 18; // px, one line of x tick labels
const SPACE = { x: 50, y: 30 }; // px at least between two ticks (uPlot's defaults)

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function colour(k) {
  const index = k % FIXED.length;
  if (index === 0) return css("--accent") || "#1c5fb8";
  if (index === 1) return css("--hl-window") || "#f08c00";
  return FIXED[index];
}

const readout = (value) => (value === null || value === undefined || !Number.isFinite(value) ? "–" : formatNumber(value, 4));

/**
 * The room an axis needs: its tick labels' widest text (y) or one text line (x), measured with
 * the axis font, plus the tick marks. uPlot puts the title outside this, so ticks never overlap
 * the title whatever the numbers' width (1e-5 on a log scale, 0.9 on accuracy).
 */
function axisRoom(self, values, axisIndex, cycle) {
  const axis = self.axes[axisIndex];
  if (cycle > 1) return axis._size;
  const scale = typeScale();
  const ticks = axis.ticks.size + TICK_GAP * scale;
  if (axisIndex === 0) return ticks + X_TICK_ROOM * scale;
  self.ctx.font = axis.font[0];
  const widest = (values ?? []).reduce((most, text) => Math.max(most, self.ctx.measureText(text).width), 0);
  return Math.ceil(ticks + widest / uPlot.pxRatio);
}

const logTicks = (self, splits) => splits.map((v) => (v === null ? "" : v >= 1e4 || v < 1e-2 ? v.toExponential(0) : String(v)));

/**
 * A line chart in `container`. options: label (aria), xLabel, yLabel, log (start on a log scale),
 * onZoom(zoomed) (the zoom state changed). Returns { update, setLog, resetZoom, get log }.
 * The container carries data-series-points (finite values per series, comma-separated), data-log and
 * data-zoomed for tests and screen readers; the hover read-out is uPlot's live legend.
 */
export function createRunChart(container, options = {}) {
  let plot = null;
  let data = null;
  let names = [];
  let log = Boolean(options.log);
  let zoomed = false;
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", options.label || "");
  container.tabIndex = 0;

  const setZoomed = (value) => {
    zoomed = value;
    container.dataset.zoomed = String(value);
    options.onZoom?.(value);
  };

  const height = () => Math.round(HEIGHT * typeScale());

  function build() {
    plot?.destroy();
    const fg = css("--fg") || "#1a1d24";
    const grid = css("--grid-line") || "#c4cad5";
    const scale = typeScale();
    const px = (size) => `${size * scale}px system-ui`;
    const axis = (label, space, extra = {}) => ({
      label, labelSize: LABEL_SIZE * scale, labelFont: `600 ${px(LABEL_FONT)}`, font: px(TICK_FONT),
      stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 4 * scale },
      size: axisRoom, gap: 4 * scale, space: space * scale, ...extra,
    });
    plot = new uPlot({
      width: Math.max(200, container.clientWidth),
      height: height(),
      scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : { auto: true } },
      axes: [axis(options.xLabel, SPACE.x), axis(options.yLabel, SPACE.y, log ? { values: logTicks } : {})],
      series: [
        { label: options.xLabel, value: (self, v) => (v === null ? "–" : String(v)) },
        ...names.map((name, k) => ({
          label: name, stroke: colour(k), width: 2 * scale, dash: DASHES[k % DASHES.length].map((d) => d * scale),
          spanGaps: true, value: (self, v) => readout(v), // points are drawn where lines are sparse (one step)
        })),
      ],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 7 * scale } },
      legend: { live: true },
      hooks: {
        setSelect: [(self) => { if (self.select.width > 0) setZoomed(true); }],
        setCursor: [(self) => { container.dataset.cursor = self.cursor.idx ?? ""; }],
        setScale: [(self, key) => {
          if (key === "x") container.dataset.xRange = `${self.scales.x.min},${self.scales.x.max}`;
        }],
      },
    }, shaped(), container);
    plot.over.addEventListener("dblclick", () => setZoomed(false));
    container.dataset.log = String(log);
    container.dataset.tickFont = String(TICK_FONT * scale); // px, for tests (a canvas has no CSS)
    container.dataset.labelFont = String(LABEL_FONT * scale);
  }

  /** uPlot's columns: x, then one array per series; gaps (and, on a log scale, values ≤ 0) null. */
  function shaped() {
    if (!data) return [[], ...names.map(() => [])];
    const clean = (v) => (Number.isFinite(v) && (!log || v > 0) ? v : null);
    return [data.x, ...data.series.map((s) => s.values.map(clean))];
  }

  function update(next) {
    data = next;
    const nextNames = next.series.map((s) => s.name);
    container.dataset.seriesPoints = next.series.map((s) => s.values.filter(Number.isFinite).length).join(",");
    if (!plot || nextNames.join("\u0000") !== names.join("\u0000")) {
      names = nextNames;
      build();
      return;
    }
    // while the reader has zoomed in, new steps arrive without moving the view
    plot.setData(shaped(), !zoomed);
  }

  function setLog(on) {
    if (Boolean(on) === log) return;
    log = Boolean(on);
    if (plot) build();
    else container.dataset.log = String(log);
  }

  function resetZoom() {
    if (!plot) return;
    setZoomed(false);
    plot.setData(shaped(), true);
  }

  // ← → move the read-out along the samples (keyboard hover); Escape zooms out
  container.addEventListener("keydown", (event) => {
    if (!plot || !data?.x.length) return;
    if (event.key === "Escape") resetZoom();
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    const last = data.x.length - 1;
    const at = plot.cursor.idx ?? (event.key === "ArrowLeft" ? last + 1 : -1);
    const next = Math.max(0, Math.min(last, at + (event.key === "ArrowLeft" ? -1 : 1)));
    plot.setCursor({ left: plot.valToPos(data.x[next], "x"), top: plot.bbox.height / uPlot.pxRatio / 2 });
  });

  new ResizeObserver(() => {
    if (plot && Math.abs(plot.width - container.clientWidth) > 2) plot.setSize({ width: Math.max(200, container.clientWidth), height: height() });
  }).observe(container);
  // presenter mode on or off (theme.js): drawn again at the new type size
  onTypeScaleChange(() => plot && build());

  return { update, setLog, resetZoom, get log() { return log; }, get plot() { return plot; } };
}
