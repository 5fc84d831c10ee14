// One layer opened: all its channels as an atlas (click or arrow keys pick one), the picked
// channel enlarged with a value readout under the pointer or the keyboard cursor, and the
// colour scale with the channel's range. Values come from the grey version of the same atlas:
// its level (0..255) and the channel's [low, high] give value = low + level / 255 · (high − low).

import { t } from "./i18n.js";
import { formatNumber } from "./format.js";
import { shapeText } from "./feature_layers.js";

const GAP = 1; // pixels between tiles in an atlas (cnncore.features.ATLAS_GAP)
const ATLAS_TARGET = 520; // the atlas canvas is drawn at an integer zoom up to about this size
const CHANNEL_TARGET = 320;

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(url));
    image.src = url;
  });
}

function greyLevels(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

/** Where tile `index` starts in the atlas, in atlas pixels. */
function tileOrigin(layer, index) {
  const [tileH, tileW] = layer.tile;
  const cols = layer.grid[1];
  return { top: Math.floor(index / cols) * (tileH + GAP), left: (index % cols) * (tileW + GAP) };
}

function zoomFor(width, height, target) {
  return Math.max(1, Math.floor(target / Math.max(width, height)));
}

export function createLayerDetail(nodes, { onChannel }) {
  let layer = null;
  let coloured = null;
  let levels = null;
  let channel = 0;
  let cursor = { row: 0, col: 0 };
  let lut = [];
  let ticket = 0;

  /** Tiles in the atlas: one per shown channel, or one for all the units. */
  function tiles() {
    return layer.units ? 1 : layer.channels_shown;
  }

  function drawAtlas() {
    const { atlas } = nodes;
    const zoom = zoomFor(coloured.naturalWidth, coloured.naturalHeight, ATLAS_TARGET);
    atlas.width = coloured.naturalWidth * zoom;
    atlas.height = coloured.naturalHeight * zoom;
    const context = atlas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(coloured, 0, 0, atlas.width, atlas.height);
    const { top, left } = tileOrigin(layer, channel);
    const [tileH, tileW] = layer.tile;
    context.lineWidth = Math.max(2, zoom);
    context.strokeStyle = getComputedStyle(atlas).getPropertyValue("--pick").trim() || "#f08c00";
    context.strokeRect(left * zoom, top * zoom, tileW * zoom, tileH * zoom);
    atlas.dataset.zoom = String(zoom);
  }

  function drawChannel() {
    const [tileH, tileW] = layer.tile;
    const zoom = zoomFor(tileW, tileH, CHANNEL_TARGET);
    const canvas = nodes.channel;
    canvas.width = tileW * zoom;
    canvas.height = tileH * zoom;
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    const { top, left } = tileOrigin(layer, channel);
    context.drawImage(coloured, left, top, tileW, tileH, 0, 0, canvas.width, canvas.height);
    context.lineWidth = 2;
    context.strokeStyle = "#ffffff";
    context.strokeRect(cursor.col * zoom + 1, cursor.row * zoom + 1, zoom - 2, zoom - 2);
    context.strokeStyle = "#000000";
    context.strokeRect(cursor.col * zoom, cursor.row * zoom, zoom, zoom);
    canvas.dataset.zoom = String(zoom);
    const [low, high] = layer.ranges[channel];
    nodes.caption.textContent = layer.units
      ? t("features.detail.units", { count: layer.channels })
      : t("features.detail.channel", { channel: channel + 1, count: layer.channels });
    nodes.legendLow.textContent = formatNumber(low, 3);
    nodes.legendHigh.textContent = formatNumber(high, 3);
    readout();
  }

  /** The value under the cursor, from the grey atlas's level and the channel's range. */
  function readout() {
    const { top, left } = tileOrigin(layer, channel);
    const [, tileW] = layer.tile;
    const { row, col } = cursor;
    const level = levels.data[((top + row) * levels.width + left + col) * 4];
    const [low, high] = layer.ranges[channel];
    const value = formatNumber(low + (level / 255) * (high - low), 4);
    if (layer.units) {
      const unit = row * tileW + col;
      nodes.readout.textContent = unit < layer.channels
        ? t("features.readout.unit", { unit: unit + 1, value })
        : "";
    } else {
      nodes.readout.textContent = t("features.readout", { row: row + 1, col: col + 1, value });
    }
  }

  function drawLegend() {
    const context = nodes.legendBar.getContext("2d");
    lut.forEach((colour, level) => {
      context.fillStyle = colour;
      context.fillRect(level, 0, 1, 1);
    });
  }

  function pick(index) {
    if (!layer) return;
    const next = Math.max(0, Math.min(tiles() - 1, index));
    if (next !== channel) cursor = { row: 0, col: 0 };
    channel = next;
    drawAtlas();
    drawChannel();
    onChannel(channel);
  }

  function moveCursor(dRow, dCol) {
    const [tileH, tileW] = layer.tile;
    cursor = {
      row: Math.max(0, Math.min(tileH - 1, cursor.row + dRow)),
      col: Math.max(0, Math.min(tileW - 1, cursor.col + dCol)),
    };
    drawChannel();
  }

  function atlasPixel(canvas, event) {
    const zoom = Number(canvas.dataset.zoom) || 1;
    const scaleX = canvas.width / canvas.clientWidth;
    const scaleY = canvas.height / canvas.clientHeight;
    return { x: (event.offsetX * scaleX) / zoom, y: (event.offsetY * scaleY) / zoom };
  }

  nodes.atlas.addEventListener("click", (event) => {
    if (!layer) return;
    const { x, y } = atlasPixel(nodes.atlas, event);
    const [tileH, tileW] = layer.tile;
    const col = Math.floor(x / (tileW + GAP));
    const row = Math.floor(y / (tileH + GAP));
    const index = row * layer.grid[1] + col;
    if (col < layer.grid[1] && index < tiles()) pick(index);
  });
  nodes.atlas.addEventListener("keydown", (event) => {
    if (!layer) return;
    const cols = layer.grid[1];
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols };
    if (event.key in moves) pick(channel + moves[event.key]);
    else if (event.key === "Enter") nodes.channel.focus();
    else return;
    event.preventDefault();
  });
  nodes.channel.addEventListener("pointermove", (event) => {
    if (!layer) return;
    const { x, y } = atlasPixel(nodes.channel, event);
    const [tileH, tileW] = layer.tile;
    const row = Math.max(0, Math.min(tileH - 1, Math.floor(y)));
    const col = Math.max(0, Math.min(tileW - 1, Math.floor(x)));
    if (row !== cursor.row || col !== cursor.col) {
      cursor = { row, col };
      drawChannel();
    }
  });
  nodes.channel.addEventListener("keydown", (event) => {
    if (!layer) return;
    const moves = { ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0] };
    if (!(event.key in moves)) return;
    event.preventDefault();
    moveCursor(...moves[event.key]);
  });

  return {
    /** Open `layer` in `colormap` at `index`; `colours` is the colormap's 256 CSS colours. */
    async show(next, colormap, index, colours) {
      const mine = ++ticket;
      const [image, grey] = await Promise.all([
        loadImage(`${next.url}?colormap=${colormap}`),
        loadImage(`${next.url}?colormap=gray`),
      ]);
      if (mine !== ticket) return; // a newer layer was asked for meanwhile
      layer = next;
      coloured = image;
      levels = greyLevels(grey);
      lut = colours;
      if (index >= tiles()) index = 0;
      if (index !== channel) cursor = { row: 0, col: 0 };
      channel = index;
      const [tileH, tileW] = layer.tile;
      cursor = { row: Math.min(cursor.row, tileH - 1), col: Math.min(cursor.col, tileW - 1) };
      nodes.heading.textContent = t("features.detail.heading", { name: layer.name });
      const capped = layer.channels_shown < layer.channels;
      nodes.facts.textContent = [
        layer.type,
        shapeText(layer.shape),
        capped ? t("features.detail.capped", { shown: layer.channels_shown, count: layer.channels }) : "",
      ].filter(Boolean).join(" · ");
      nodes.section.hidden = false;
      drawLegend();
      drawAtlas();
      drawChannel();
    },
    hide() {
      ticket++;
      layer = null;
      nodes.section.hidden = true;
    },
  };
}
