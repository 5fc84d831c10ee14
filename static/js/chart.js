// THE chart renderer: line charts (activation curves) and bar charts (per-layer gradient norms,
// softmax probabilities) as SVG built from the DOM. Colours come from CSS classes (series-0,
// series-1, ...), so themes restyle them; sizes from a fixed viewBox scaled to the container.
// Charts read by tests and screen readers: every bar and point carries its value in data-value.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 300;
// the y axis's title sits above the plot, over the tick column, where no tick text can reach it
// (turned along the axis at the left edge it met tick labels as wide as "1e-10")
const MARGIN = { top: 30, right: 16, bottom: 40, left: 58 };
const Y_TITLE = { x: 6, y: 17 };

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

function frame(container, label) {
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, class: "chart" });
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  container.append(svg);
  const layers = {};
  for (const name of ["axes", "data", "cursor"]) {
    layers[name] = el("g", { class: `chart-${name}` });
    svg.append(layers[name]);
  }
  return { svg, layers };
}

function axes(layer, { xTicks, yTicks, xOf, yOf, xLabel, yLabel, yFormat = tickText, xGrid = true }) {
  layer.replaceChildren();
  const [left, right] = [MARGIN.left, WIDTH - MARGIN.right];
  const [top, bottom] = [MARGIN.top, HEIGHT - MARGIN.bottom];
  for (const value of yTicks) {
    const y = yOf(value);
    layer.append(el("line", { x1: left, x2: right, y1: y, y2: y, class: value === 0 ? "chart-zero" : "chart-grid" }));
    layer.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "chart-tick" }, yFormat(value)));
  }
  for (const tick of xTicks) {
    const [value, text] = Array.isArray(tick) ? tick : [tick, tickText(tick)];
    const x = xOf(value);
    if (xGrid) layer.append(el("line", { x1: x, x2: x, y1: top, y2: bottom, class: value === 0 ? "chart-zero" : "chart-grid" }));
    layer.append(el("text", { x, y: bottom + 16, "text-anchor": "middle", class: "chart-tick" }, text));
  }
  layer.append(el("rect", { x: left, y: top, width: right - left, height: bottom - top, class: "chart-frame" }));
  if (xLabel) layer.append(el("text", { x: (left + right) / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "chart-label" }, xLabel));
  if (yLabel) {
    layer.append(el("text", { ...Y_TITLE, "text-anchor": "start", class: "chart-label chart-y-title" }, yLabel));
  }
}

/**
 * A line chart in `container`. options: label, xLabel, yLabel, onHover(index): the cursor stays
 * on the last sample hovered, so its numbers can be read after the pointer leaves.
 * update({x: [...], series: [{name, values}]}) draws; cursor(index | null) marks one sample.
 * The chart is focusable: ← → move the cursor (keyboard hover).
 */
export function createLineChart(container, options = {}) {
  const { svg, layers } = frame(container, options.label || "");
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
    const xOf = (v) => MARGIN.left + ((v - xMin) / (xMax - xMin)) * (WIDTH - MARGIN.left - MARGIN.right);
    const yOf = (v) => HEIGHT - MARGIN.bottom - ((v - yMin) / (yMax - yMin)) * (HEIGHT - MARGIN.top - MARGIN.bottom);
    scale = { xOf, yOf };
    axes(layers.axes, { xTicks: niceTicks(xMin, xMax, 8), yTicks: niceTicks(yMin, yMax, 6), xOf, yOf,
      xLabel: options.xLabel, yLabel: options.yLabel });
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
    const x = scale.xOf(data.x[at]);
    layers.cursor.append(el("line", { x1: x, x2: x, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, class: "chart-cursor" }));
    data.series.forEach((series, k) => {
      if (!Number.isFinite(series.values[at])) return;
      layers.cursor.append(el("circle", { cx: x, cy: scale.yOf(series.values[at]), r: 5,
        class: `chart-dot series-${k}`, "data-value": series.values[at] }));
    });
  }

  function nearest(event) {
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * WIDTH;
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
  const { layers } = frame(container, options.label || "");

  function update({ labels, series, marked = [] }) {
    const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && (!options.log || v > 0));
    const transform = options.log ? Math.log10 : (v) => v;
    let [low, high] = values.length ? [Math.min(...values.map(transform)), Math.max(...values.map(transform))] : [0, 1];
    if (options.log) [low, high] = [Math.floor(low), Math.ceil(high)];
    else [low, high] = [Math.min(0, low), options.max ?? Math.max(high, 1e-12)];
    if (high - low < 1e-9) high = low + 1;
    const span = WIDTH - MARGIN.left - MARGIN.right;
    const slot = span / labels.length;
    const yOf = (v) => HEIGHT - MARGIN.bottom - ((v - low) / (high - low)) * (HEIGHT - MARGIN.top - MARGIN.bottom);
    const xOf = (i) => MARGIN.left + (i + 0.5) * slot;
    const yTicks = options.log
      ? Array.from({ length: high - low + 1 }, (_, k) => low + k).filter((_, k, all) => all.length <= 12 || k % Math.ceil(all.length / 12) === 0)
      : niceTicks(low, high, 5);
    const every = Math.ceil(labels.length / 16);
    const xTicks = labels.map((text, i) => [i, i % every === 0 || i === labels.length - 1 ? text : ""]);
    axes(layers.axes, { xTicks, yTicks, xOf, yOf, xLabel: options.xLabel, yLabel: options.yLabel,
      yFormat: options.log ? (v) => `1e${v}` : tickText, xGrid: false });
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
