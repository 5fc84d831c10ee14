// THE chart renderer: line charts (activation curves) and bar charts (per-layer gradient norms,
// softmax probabilities) as SVG built from the DOM. Colours come from CSS classes (series-0,
// series-1, ...), so themes restyle them. Charts read by tests and screen readers: every bar and
// point carries its value in data-value.
// One SVG unit is one screen px: the chart is laid out again for its container's width (and when
// presenter mode changes the type size), so its text keeps its CSS size (chart.css, in rem)
// however narrow the card, and its margins are measured from the labels it draws.

import { onTypeScaleChange, typeScale } from "./type_scale.js";

const SVG = "http://www.w3.org/2000/svg";
// Sizes in px at the page's normal type size; each is multiplied by typeScale().
const HEIGHT = { least: 220, most: 300 }; // between these, the height follows the width:
const ASPECT = 300 / 640;
const UNLAID_WIDTH = 640; // a chart whose container has no width yet (a hidden card)
// the y axis's title sits above the plot, over the tick column, where no tick text can reach it
// (turned along the axis at the left edge it met tick labels as wide as "1e-10")
const MARGIN = { top: 30, right: 16, bottom: 40, left: 4 }; // left: beside the widest y tick label
const Y_TITLE = { x: 6, y: 17 };
const TICK_GAP = 6; // between a y tick label and the plot
const X_TICK_DROP = 16; // baseline of the x tick labels below the plot
const TITLE_RISE = 4; // baseline of the x axis's title above the bottom edge
const LABEL_GAP = 10; // at least between two x tick labels
const TICK_SPACE = { x: 60, y: 36 }; // at least between two ticks of a line chart's axes
const LOG_TICK_SPACE = 20; // at least between two ticks of a log axis (single numbers)

function el(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About `count` round tick values covering [min, max] (1, 2, 5 × 10^k steps). */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

const tickText = (value) => (Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
  ? value.toExponential(0) : String(Number(value.toPrecision(4))));

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/**
 * An SVG chart in `container`, laid out again (`redraw`) when the container's width or the type
 * size changes: box() sizes the SVG for the container and returns its plot area, fitLeft() makes
 * room for the y tick labels, widths() measures tick labels.
 */
function frame(container, label, redraw) {
  const svg = el("svg", { role: "img", "aria-label": label, class: "chart" });
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  container.append(svg);
  const layers = {};
  for (const name of ["axes", "data", "cursor"]) {
    layers[name] = el("g", { class: `chart-${name}` });
    svg.append(layers[name]);
  }
  let drawnWidth = 0;

  /** Screen widths of `texts` as tick labels (0 where the chart is not rendered). */
  function widths(texts) {
    const probes = texts.map((text) => el("text", { class: "chart-tick" }, text));
    layers.axes.append(...probes);
    const measured = probes.map((probe) => probe.getComputedTextLength());
    probes.forEach((probe) => probe.remove());
    return measured;
  }

  function size() {
    const s = typeScale();
    const width = container.clientWidth || UNLAID_WIDTH;
    const height = Math.round(clamp(width * ASPECT, HEIGHT.least * s, HEIGHT.most * s));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    drawnWidth = width;
    return { s, width, height };
  }

  /** The plot area of a chart sized for its container; its left edge is set by fitLeft. */
  function box() {
    const { s, width, height } = size();
    return { s, width, height, left: 0, right: width - MARGIN.right * s, top: MARGIN.top * s, bottom: height - MARGIN.bottom * s };
  }

  /** Make room for the y tick labels `yTexts`: they end at plot.yTicks, the plot starts after. */
  function fitLeft(plot, yTexts) {
    plot.yTicks = MARGIN.left * plot.s + Math.max(0, ...widths(yTexts));
    plot.left = plot.yTicks + TICK_GAP * plot.s;
  }

  size();
  new ResizeObserver(() => {
    if (Math.abs(container.clientWidth - drawnWidth) > 1 && container.clientWidth > 0) redraw();
  }).observe(container);
  onTypeScaleChange(() => redraw());
  return { svg, layers, box, fitLeft, widths, get width() { return drawnWidth; } };
}

/** The plot's height split into y ticks at least `space` px (× type scale) apart, at most `most`. */
const yTickCount = (plot, space, most) => clamp(Math.floor((plot.bottom - plot.top) / (space * plot.s)), 2, most);

/** niceTicks, asking for more where a round step leaves fewer than three (a short plot). */
function someTicks(min, max, count) {
  let ticks = niceTicks(min, max, count);
  for (let more = count + 1; ticks.length < 3 && more <= 2 * count; more += 1) ticks = niceTicks(min, max, more);
  return ticks;
}

function axes(layer, plot, { xTicks, yTicks, xOf, yOf, xLabel, yLabel, yFormat = tickText, xGrid = true }) {
  layer.replaceChildren();
  const { s, left, right, top, bottom } = plot;
  for (const value of yTicks) {
    const y = yOf(value);
    layer.append(el("line", { x1: left, x2: right, y1: y, y2: y, class: value === 0 ? "chart-zero" : "chart-grid" }));
    layer.append(el("text", { x: plot.yTicks, y: y + 4 * s, "text-anchor": "end", class: "chart-tick" }, yFormat(value)));
  }
  for (const tick of xTicks) {
    const [value, text] = Array.isArray(tick) ? tick : [tick, tickText(tick)];
    const x = xOf(value);
    if (xGrid) layer.append(el("line", { x1: x, x2: x, y1: top, y2: bottom, class: value === 0 ? "chart-zero" : "chart-grid" }));
    layer.append(el("text", { x, y: bottom + X_TICK_DROP * s, "text-anchor": "middle", class: "chart-tick" }, text));
  }
  layer.append(el("rect", { x: left, y: top, width: right - left, height: bottom - top, class: "chart-frame" }));
  if (xLabel) layer.append(el("text", { x: (left + right) / 2, y: plot.height - TITLE_RISE * s, "text-anchor": "middle", class: "chart-label" }, xLabel));
  if (yLabel) {
    layer.append(el("text", { x: Y_TITLE.x * s, y: Y_TITLE.y * s, "text-anchor": "start", class: "chart-label chart-y-title" }, yLabel));
  }
}

/**
 * A line chart in `container`. options: label, xLabel, yLabel, onHover(index): the cursor stays
 * on the last sample hovered, so its numbers can be read after the pointer leaves.
 * update({x: [...], series: [{name, values}]}) draws; cursor(index | null) marks one sample.
 * The chart is focusable: ← → move the cursor (keyboard hover).
 */
export function createLineChart(container, options = {}) {
  const chart = frame(container, options.label || "", () => data && update(data));
  const { svg, layers } = chart;
  svg.setAttribute("tabindex", "0");
  let data = null;
  let scale = null;
  let index = null;

  function update(next) {
    data = next;
    const values = next.series.flatMap((s) => s.values).filter(Number.isFinite);
    let [yMin, yMax] = [Math.min(...values), Math.max(...values)];
    if (yMax - yMin < 1e-9) [yMin, yMax] = [yMin - 1, yMax + 1];
    const padY = (yMax - yMin) * 0.06;
    [yMin, yMax] = [yMin - padY, yMax + padY];
    const [xMin, xMax] = [next.x[0], next.x[next.x.length - 1]];
    const plot = chart.box();
    const yTicks = someTicks(yMin, yMax, yTickCount(plot, TICK_SPACE.y, 6));
    chart.fitLeft(plot, yTicks.map(tickText));
    // x ticks at least TICK_SPACE.x apart; the outermost labels, centred on the plot's edges, fit
    const xTicks = niceTicks(xMin, xMax, clamp(Math.floor((plot.right - plot.left) / (TICK_SPACE.x * plot.s)), 2, 8));
    const xWidths = chart.widths(xTicks.map(tickText));
    // the first x label, centred on the plot's left edge, stays clear of the y tick labels
    plot.left = Math.max(plot.left, plot.yTicks + xWidths[0] / 2 + 2);
    plot.right = Math.min(plot.right, plot.width - xWidths[xWidths.length - 1] / 2 - 2);
    const xOf = (v) => plot.left + ((v - xMin) / (xMax - xMin)) * (plot.right - plot.left);
    const yOf = (v) => plot.bottom - ((v - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);
    scale = { xOf, yOf, plot };
    axes(layers.axes, plot, { xTicks, yTicks, xOf, yOf, xLabel: options.xLabel, yLabel: options.yLabel });
    layers.data.replaceChildren(
      ...next.series.map((series, k) => {
        // a missing value (null, NaN) is skipped: sparse series (one value per epoch) join up
        const points = next.x.flatMap((x, i) => (Number.isFinite(series.values[i])
          ? [`${xOf(x).toFixed(2)},${yOf(series.values[i]).toFixed(2)}`] : []));
        return el("polyline", { points: points.join(" "), class: `chart-line series-${k}`, "data-name": series.name });
      }),
    );
    cursor(index === null ? null : Math.min(index, next.x.length - 1));
  }

  function cursor(at) {
    index = at;
    layers.cursor.replaceChildren();
    if (at === null || !data) return;
    const { plot } = scale;
    const x = scale.xOf(data.x[at]);
    layers.cursor.append(el("line", { x1: x, x2: x, y1: plot.top, y2: plot.bottom, class: "chart-cursor" }));
    data.series.forEach((series, k) => {
      if (!Number.isFinite(series.values[at])) return;
      layers.cursor.append(el("circle", { cx: x, cy: scale.yOf(series.values[at]), r: 5 * plot.s,
        class: `chart-dot series-${k}`, "data-value": series.values[at] }));
    });
  }

  function nearest(event) {
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * chart.width;
    let best = 0;
    data.x.forEach((value, i) => {
      if (Math.abs(scale.xOf(value) - x) < Math.abs(scale.xOf(data.x[best]) - x)) best = i;
    });
    return best;
  }

  svg.addEventListener("pointermove", (event) => {
    if (!data) return;
    const at = nearest(event);
    cursor(at);
    options.onHover?.(at);
  });
  svg.addEventListener("keydown", (event) => {
    if (!data || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
    const step = Math.max(1, Math.round(data.x.length / 100));
    const start = index ?? Math.floor(data.x.length / 2);
    const at = Math.min(data.x.length - 1, Math.max(0, start + (event.key === "ArrowRight" ? step : -step)));
    cursor(at);
    options.onHover?.(at);
    event.preventDefault();
  });
  return { element: svg, update, cursor, get index() { return index; } };
}

/**
 * A bar chart in `container`. options: label, xLabel, yLabel, log (a log10 axis), max (fixed top),
 * format(value) for the axis. update({labels: [...], series: [{name, values}], marked: [i...]})
 * draws groups of bars (one per series) per label; marked labels get class is-marked.
 */
export function createBarChart(container, options = {}) {
  let drawn = null;
  const chart = frame(container, options.label || "", () => drawn && update(drawn));
  const { layers } = chart;
  const yFormat = options.log ? (v) => `1e${v}` : tickText;

  function update({ labels, series, marked = [] }) {
    drawn = { labels, series, marked };
    const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && (!options.log || v > 0));
    const transform = options.log ? Math.log10 : (v) => v;
    let [low, high] = values.length ? [Math.min(...values.map(transform)), Math.max(...values.map(transform))] : [0, 1];
    if (options.log) [low, high] = [Math.floor(low), Math.ceil(high)];
    else [low, high] = [Math.min(0, low), options.max ?? Math.max(high, 1e-12)];
    if (high - low < 1e-9) high = low + 1;
    const plot = chart.box();
    const most = yTickCount(plot, LOG_TICK_SPACE, Infinity);
    const yTicks = options.log
      ? Array.from({ length: high - low + 1 }, (_, k) => low + k).filter((_, k, all) => all.length <= most || k % Math.ceil(all.length / most) === 0)
      : someTicks(low, high, yTickCount(plot, TICK_SPACE.y, 5));
    chart.fitLeft(plot, yTicks.map(yFormat));
    // every label that fits: one in `every`, at least LABEL_GAP apart; the last one always
    const labelWidths = chart.widths(labels);
    plot.right = Math.min(plot.right, plot.width - (labelWidths[labels.length - 1] ?? 0) / 2 - 2);
    // the first label, centred on its bar, stays right of the y tick labels' column
    const half = 1 / (2 * labels.length);
    plot.left = Math.max(plot.left, (plot.yTicks + (labelWidths[0] ?? 0) / 2 + 2 - plot.right * half) / (1 - half));
    const slot = (plot.right - plot.left) / labels.length;
    const room = Math.max(...labelWidths) + LABEL_GAP * plot.s;
    const every = Math.ceil(room / slot);
    const last = labels.length - 1;
    const shown = (i) => i === last || (i % every === 0 && (last - i) * slot >= room);
    const xOf = (i) => plot.left + (i + 0.5) * slot;
    const yOf = (v) => plot.bottom - ((v - low) / (high - low)) * (plot.bottom - plot.top);
    const xTicks = labels.map((text, i) => [i, shown(i) ? text : ""]);
    axes(layers.axes, plot, { xTicks, yTicks, xOf, yOf, xLabel: options.xLabel, yLabel: options.yLabel, yFormat, xGrid: false });
    const width = (slot * 0.8) / series.length;
    const base = yOf(options.log ? low : Math.max(low, 0));
    const bars = [];
    labels.forEach((label, i) => {
      series.forEach((s, k) => {
        const value = s.values[i];
        if (!Number.isFinite(value) || (options.log && value <= 0)) return;
        const top = yOf(transform(value));
        const x = xOf(i) - (slot * 0.4) + k * width;
        const bar = el("rect", {
          x, y: Math.min(top, base), width: Math.max(1, width - 1), height: Math.max(1, Math.abs(base - top)),
          class: `chart-bar series-${k}${marked.includes(i) ? " is-marked" : ""}`,
          "data-label": label, "data-series": s.name, "data-value": value,
        });
        bar.append(el("title", {}, `${label} · ${s.name}: ${value.toPrecision(4)}`));
        bars.push(bar);
      });
    });
    layers.data.replaceChildren(...bars);
  }

  return { update };
}
