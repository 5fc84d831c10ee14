// The picture the network receives, with one unit's receptive field drawn over it: the whole
// field (padding included) dashed, the part the unit can actually change solid, the padding
// around the image hatched, and the effective field |∂unit/∂input| as an orange veil whose
// opacity follows √level (a gradient is peaked: the square root keeps its tails visible).
//
// The canvas says what it drew, for tests and screen readers: data-box and data-clipped-box hold
// the input rows and columns "y0,y1,x0,x1", data-rect the dashed rectangle in canvas pixels
// "left,top,width,height", data-zoom and data-margin the drawing geometry.

import { cssColour, loadImage, paintLevels, pixelsOf } from "./pictures.js";

const TARGET = 640; // canvas pixels along the longer side, reached by an integer zoom
// Padding shown around the image: as far as the model's fields reach past the border, between
// these shares of the image's longer side (a deep layer's field may reach much further).
const MARGIN_MIN = 0.1;
const MARGIN_MAX = 0.6;
const HEAT_RGB = [255, 96, 0];
const HEAT_ALPHA = 0.8;

const boxText = (box) => (box ? `${box.y0},${box.y1},${box.x0},${box.x1}` : "");

/** A coloured veil from the grey heatmap: opacity √(level / 255). */
function veil(levels) {
  return paintLevels(levels, (level) => [
    ...HEAT_RGB,
    Math.round(255 * HEAT_ALPHA * Math.sqrt(level / 255)),
  ]);
}

export function createPictureView(canvas) {
  let size = null; // {height, width} of the network input
  let reach = 0; // input pixels the fields reach past the border
  let picture = null; // the input picture (an <img>)
  let heat = null; // the veil (a canvas the size of the input)
  let showHeat = true;
  let unit = null; // GET /api/models/{name}/receptive-field answer

  function geometry() {
    const { height, width } = size;
    const longer = Math.max(height, width);
    const margin = Math.ceil(Math.min(MARGIN_MAX * longer, Math.max(MARGIN_MIN * longer, reach)));
    const zoom = Math.max(1, Math.ceil(TARGET / (Math.max(height, width) + 2 * margin)));
    return { margin, zoom, width: (width + 2 * margin) * zoom, height: (height + 2 * margin) * zoom };
  }

  /** Canvas rectangle of input rows y0..y1, columns x0..x1 (both ends included). */
  function rectOf(box, g) {
    return {
      left: (box.x0 + g.margin) * g.zoom,
      top: (box.y0 + g.margin) * g.zoom,
      width: (box.x1 - box.x0 + 1) * g.zoom,
      height: (box.y1 - box.y0 + 1) * g.zoom,
    };
  }

  function drawPadding(context, g) {
    context.fillStyle = cssColour(canvas, "--pad-bg", "#e9ecf1");
    context.fillRect(0, 0, g.width, g.height);
    context.strokeStyle = cssColour(canvas, "--pad-stripe", "#dde1e8");
    context.lineWidth = Math.max(1, g.zoom / 2);
    const step = 8 * Math.max(1, Math.round(g.zoom / 2));
    context.beginPath();
    for (let d = -g.height; d < g.width; d += step) {
      context.moveTo(d, g.height);
      context.lineTo(d + g.height, 0);
    }
    context.stroke();
  }

  function draw() {
    if (!size) return;
    const g = geometry();
    if (canvas.width !== g.width || canvas.height !== g.height) {
      canvas.width = g.width;
      canvas.height = g.height;
    }
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    drawPadding(context, g);
    const image = { left: g.margin * g.zoom, top: g.margin * g.zoom };
    const [w, h] = [size.width * g.zoom, size.height * g.zoom];
    if (picture) context.drawImage(picture, image.left, image.top, w, h);
    else context.clearRect(image.left, image.top, w, h);
    if (showHeat && heat) context.drawImage(heat, image.left, image.top, w, h);
    canvas.dataset.zoom = String(g.zoom);
    canvas.dataset.margin = String(g.margin);
    canvas.dataset.box = boxText(unit?.box);
    canvas.dataset.clippedBox = boxText(unit?.clipped_box);
    if (!unit) {
      canvas.dataset.rect = "";
      return;
    }
    // about 2.5 screen pixels wide, whatever the canvas is scaled to
    const perScreenPixel = canvas.clientWidth ? g.width / canvas.clientWidth : 1;
    const line = Math.max(2, Math.round(2.5 * perScreenPixel));
    const colour = cssColour(canvas, "--hl-window", "#f08c00");
    const whole = rectOf(unit.box, g);
    context.lineWidth = line;
    context.strokeStyle = colour;
    context.setLineDash([3 * line, 2 * line]);
    context.strokeRect(whole.left, whole.top, whole.width, whole.height);
    context.setLineDash([]);
    if (unit.clipped_box) {
      const seen = rectOf(unit.clipped_box, g);
      // a dark halo under the solid line keeps it visible on light and dark pictures alike
      context.strokeStyle = "rgba(0, 0, 0, 0.55)";
      context.lineWidth = line + 2;
      context.strokeRect(seen.left, seen.top, seen.width, seen.height);
      context.strokeStyle = colour;
      context.lineWidth = line;
      context.strokeRect(seen.left, seen.top, seen.width, seen.height);
    }
    canvas.dataset.rect = [whole.left, whole.top, whole.width, whole.height].join(",");
  }

  new ResizeObserver(() => draw()).observe(canvas); // lines keep their width on screen

  return {
    /**
     * The input size (height, width) and how far the model's fields reach past its border; a
     * new size clears the old picture and heatmap.
     */
    setSize(next, nextReach = 0) {
      reach = nextReach;
      if (!size || size.height !== next.height || size.width !== next.width) {
        size = { height: next.height, width: next.width };
        picture = null;
        heat = null;
      }
      draw();
    },
    /** The unit's box (null: none chosen yet). */
    setUnit(next) {
      unit = next;
      draw();
    },
    /** The network's input picture and the ERF heatmap, as PNG data URLs. */
    async setImages(pictureURL, heatURL) {
      const [nextPicture, heatImage] = await Promise.all([loadImage(pictureURL), loadImage(heatURL)]);
      picture = nextPicture;
      heat = veil(pixelsOf(heatImage));
      draw();
    },
    clearHeat() {
      heat = null;
      draw();
    },
    setShowHeat(on) {
      showHeat = on;
      canvas.dataset.heat = on ? "shown" : "hidden";
      draw();
    },
    redraw: draw,
  };
}
