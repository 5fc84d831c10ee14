// The chosen layer's feature map (H′×W′ units, the mean over its channels on this picture) with
// the chosen unit framed. Click a unit, or move with the arrow keys, to choose it. Until the
// map arrives the units are drawn as an empty grid of the layer's size. Values come back from
// the grey PNG: value = low + level / 255 · (high − low); colours are the grids' colour map
// (diverging around 0 when the map has both signs).
//
// The canvas says what it shows: data-size "H,W", data-unit "y,x".

import { colorFor } from "./colormap.js";
import { cssColour, loadImage, paintLevels, pixelsOf } from "./pictures.js";

const TARGET = 480; // canvas pixels along the longer side, reached by an integer zoom
const GRID_FROM = 6; // unit outlines are drawn from this zoom on

/** The map in colour: each grey level back to its value, then through the colour map. */
function coloured(levels, low, high) {
  const range = { min: low, max: high };
  const paint = (level) => [...colorFor(low + (level / 255) * (high - low), range, 0), 255];
  return { canvas: paintLevels(levels, paint), levels };
}

export function createMapView(canvas, { onPick }) {
  let size = null; // {height, width}: units of the layer
  let map = null; // {canvas, levels, low, high}
  let unit = null; // {y, x}

  const zoomOf = () => Math.max(1, Math.floor(TARGET / Math.max(size.height, size.width)));

  function draw() {
    if (!size) return;
    const zoom = zoomOf();
    const [width, height] = [size.width * zoom, size.height * zoom];
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    if (map) {
      context.drawImage(map.canvas, 0, 0, width, height);
    } else {
      context.fillStyle = cssColour(canvas, "--pad-bg", "#e9ecf1");
      context.fillRect(0, 0, width, height);
    }
    if (zoom >= GRID_FROM) {
      context.strokeStyle = cssColour(canvas, "--grid-line", "#c4cad5");
      context.globalAlpha = map ? 0.35 : 1;
      context.lineWidth = 1;
      context.beginPath();
      for (let r = 0; r <= size.height; r++) {
        context.moveTo(0, r * zoom + 0.5);
        context.lineTo(width, r * zoom + 0.5);
      }
      for (let c = 0; c <= size.width; c++) {
        context.moveTo(c * zoom + 0.5, 0);
        context.lineTo(c * zoom + 0.5, height);
      }
      context.stroke();
      context.globalAlpha = 1;
    }
    canvas.dataset.size = `${size.height},${size.width}`;
    canvas.dataset.unit = unit ? `${unit.y},${unit.x}` : "";
    if (!unit) return;
    const perScreenPixel = canvas.clientWidth ? width / canvas.clientWidth : 1;
    const line = Math.max(2, Math.round(2.5 * perScreenPixel));
    const frame = [unit.x * zoom, unit.y * zoom, zoom, zoom];
    context.lineWidth = line + 2;
    context.strokeStyle = "#000000";
    context.strokeRect(...frame);
    context.lineWidth = line;
    context.strokeStyle = cssColour(canvas, "--hl-window", "#f08c00");
    context.strokeRect(...frame);
  }

  /** The value of unit (y, x) on the map, or null before the map arrives. */
  function valueAt(y, x) {
    if (!map) return null;
    const level = map.levels.data[(y * map.levels.width + x) * 4];
    return map.low + (level / 255) * (map.high - map.low);
  }

  function pick(y, x) {
    if (!size) return;
    onPick(Math.max(0, Math.min(size.height - 1, y)), Math.max(0, Math.min(size.width - 1, x)));
  }

  new ResizeObserver(() => draw()).observe(canvas); // lines keep their width on screen

  canvas.addEventListener("click", (event) => {
    if (!size) return;
    const y = Math.floor((event.offsetY / canvas.clientHeight) * size.height);
    const x = Math.floor((event.offsetX / canvas.clientWidth) * size.width);
    pick(y, x);
  });
  canvas.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (!size || !unit || !(event.key in moves)) return;
    event.preventDefault();
    const [dy, dx] = moves[event.key];
    pick(unit.y + dy, unit.x + dx);
  });

  return {
    /** A layer of `next` = {height, width} units; another size drops the old map. */
    setSize(next) {
      if (size && size.height === next.height && size.width === next.width) return;
      size = { height: next.height, width: next.width };
      map = null;
      draw();
    },
    setUnit(y, x) {
      unit = { y, x };
      draw();
    },
    /** The layer's map from the ERF answer ({image, low, high}); null: none for this layer. */
    async setMap(featureMap) {
      if (!featureMap) {
        map = null;
        draw();
        return;
      }
      const levels = pixelsOf(await loadImage(featureMap.image));
      if (!size || levels.width !== size.width || levels.height !== size.height) return;
      map = { ...coloured(levels, featureMap.low, featureMap.high), low: featureMap.low,
              high: featureMap.high };
      draw();
    },
    clearMap() {
      map = null;
      draw();
    },
    valueAt,
  };
}
