// One layer opened: all its channels as an atlas (click or arrow keys pick one), the picked
// channel enlarged with a value readout under the pointer or the keyboard cursor, and the
// colour scale with the channel's range. The atlas comes shrunk to screen size; the picked
// channel comes alone at full size, in colour and in grey: the grey level (0..255) and the
// channel's [low, high] give the value back, value = low + level / 255 · (high − low).

import { t } from "./i18n.js";
import { NOT_A_NUMBER, formatNumber, shapeText } from "./format.js";
import { cssColour, loadImage, pixelsOf } from "./pictures.js";

const GAP = 1; // pixels between tiles in an atlas (cnncore.features.ATLAS_GAP)
const ATLAS_TARGET = 520; // the atlas canvas is drawn at an integer zoom up to about this size
const ATLAS_MAX_SIDE = 768; // larger atlases are sent shrunk to this (server-side area average)
const CHANNEL_TARGET = 320;

/** Width and height of a layer's full-size atlas, in pixels. */
function atlasSize(layer) {
  const [tileH, tileW] = layer.tile;
  const [rows, cols] = layer.grid;
  return { width: cols * (tileW + GAP) - GAP, height: rows * (tileH + GAP) - GAP };
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
  let colormap = "viridis";
  let atlasImage = null; // the whole layer, possibly shrunk
  let tileImage = null; // the picked channel at full size, coloured
  let levels = null; // ... and its grey levels
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
    const full = atlasSize(layer);
    const zoom = zoomFor(atlasImage.naturalWidth, atlasImage.naturalHeight, ATLAS_TARGET);
    atlas.width = atlasImage.naturalWidth * zoom;
    atlas.height = atlasImage.naturalHeight * zoom;
    const context = atlas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(atlasImage, 0, 0, atlas.width, atlas.height);
    const scale = atlas.width / full.width; // canvas pixels per full-size atlas pixel
    const { top, left } = tileOrigin(layer, channel);
    const [tileH, tileW] = layer.tile;
    context.lineWidth = Math.max(2, Math.min(4, scale));
    context.strokeStyle = cssColour(atlas, "--pick", "#f08c00");
    context.strokeRect(left * scale, top * scale, tileW * scale, tileH * scale);
  }

  function drawChannel() {
    const [tileH, tileW] = layer.tile;
    const zoom = zoomFor(tileW, tileH, CHANNEL_TARGET);
    const canvas = nodes.channel;
    canvas.width = tileW * zoom;
    canvas.height = tileH * zoom;
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(tileImage, 0, 0, canvas.width, canvas.height);
    context.lineWidth = 2;
    context.strokeStyle = "#ffffff";
    context.strokeRect(cursor.col * zoom + 1, cursor.row * zoom + 1, zoom - 2, zoom - 2);
    context.strokeStyle = "#000000";
    context.strokeRect(cursor.col * zoom, cursor.row * zoom, zoom, zoom);
    const [low, high] = layer.ranges[channel];
    drawCaption();
    nodes.legendLow.textContent = low === null ? NOT_A_NUMBER : formatNumber(low, 3);
    nodes.legendHigh.textContent = high === null ? NOT_A_NUMBER : formatNumber(high, 3);
    readout();
  }

  function drawCaption() {
    nodes.caption.textContent = layer.units
      ? t("features.detail.units", { count: layer.channels })
      : t("features.detail.channel", { channel: channel + 1, count: layer.channels });
  }

  /** The value under the cursor, from the grey tile's level and the channel's range. */
  function readout() {
    const [, tileW] = layer.tile;
    const { row, col } = cursor;
    const level = levels.data[(row * levels.width + col) * 4];
    const [low, high] = layer.ranges[channel];
    // an end at ±inf or NaN (null): the level cannot give the value back
    const value = low === null || high === null
      ? NOT_A_NUMBER : formatNumber(low + (level / 255) * (high - low), 4);
    if (layer.units) {
      const unit = row * tileW + col;
      nodes.readout.textContent = unit < layer.channels
        ? t("features.readout.unit", { unit: unit + 1, value })
        : "";
    } else {
      nodes.readout.textContent = t("features.readout", { row, col, value }) // 0-based, as "Unit (y, x)" is;
    }
  }

  function drawLegend() {
    const context = nodes.legendBar.getContext("2d");
    lut.forEach((colour, level) => {
      context.fillStyle = colour;
      context.fillRect(level, 0, 1, 1);
    });
  }

  /** Fetch channel `index` of the open layer (colour and grey), then draw it. `inline`: its
   * two pictures already at hand (data URLs of the same PNGs). */
  async function loadChannel(index, mine, inline = null) {
    // Until the channel's own pictures arrive, no value is read from another channel's levels.
    tileImage = null;
    levels = null;
    const base = `${layer.url}?channel=${index}`;
    const [colour, grey] = await Promise.all([
      loadImage(inline?.channel_colour ?? `${base}&colormap=${colormap}`),
      loadImage(inline?.channel_grey ?? `${base}&colormap=gray`),
    ]);
    if (mine !== ticket) return false; // a newer layer or channel was asked for meanwhile
    tileImage = colour;
    levels = pixelsOf(grey);
    return true;
  }

  async function pick(index) {
    if (!layer) return;
    const next = Math.max(0, Math.min(tiles() - 1, index));
    if (next === channel) return;
    channel = next;
    cursor = { row: 0, col: 0 };
    // The caption names the pick at once, with the atlas' highlight and the URL; the enlarged
    // channel follows when its pictures have loaded.
    drawCaption();
    onChannel(channel);
    drawAtlas();
    if (await loadChannel(channel, ++ticket)) drawChannel();
  }

  function moveCursor(dRow, dCol) {
    const [tileH, tileW] = layer.tile;
    cursor = {
      row: Math.max(0, Math.min(tileH - 1, cursor.row + dRow)),
      col: Math.max(0, Math.min(tileW - 1, cursor.col + dCol)),
    };
    if (tileImage) drawChannel(); // else the loading channel is drawn at this cursor
  }

  /** Pointer position in the units of `width` × `height` (the drawn picture's own pixels). */
  function pointerAt(canvas, event, width, height) {
    return {
      x: (event.offsetX / canvas.clientWidth) * width,
      y: (event.offsetY / canvas.clientHeight) * height,
    };
  }

  nodes.atlas.addEventListener("click", (event) => {
    if (!layer) return;
    const full = atlasSize(layer);
    const { x, y } = pointerAt(nodes.atlas, event, full.width, full.height);
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
    const [tileH, tileW] = layer.tile;
    const { x, y } = pointerAt(nodes.channel, event, tileW, tileH);
    const row = Math.max(0, Math.min(tileH - 1, Math.floor(y)));
    const col = Math.max(0, Math.min(tileW - 1, Math.floor(x)));
    if (row !== cursor.row || col !== cursor.col) {
      cursor = { row, col };
      if (tileImage) drawChannel();
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
    /**
     * Open `next` in `colours` (the colormap's 256 CSS colours) at channel `index`. Resolves
     * true once it is drawn, false when a newer layer or channel took over before that.
     * `inline`: the answer's pictures at hand (POST /api/features/live), used where they are
     * this layer's and channel's; the others are fetched.
     */
    async show(next, nextColormap, index, colours, inline = null) {
      const mine = ++ticket;
      const own = inline?.layer === next.name ? inline : null;
      const image = await loadImage(
        own?.atlas ?? `${next.url}?colormap=${nextColormap}&max_side=${ATLAS_MAX_SIDE}`,
      );
      if (mine !== ticket) return false;
      const sameChannel = layer && layer.url === next.url && index === channel;
      layer = next;
      colormap = nextColormap;
      atlasImage = image;
      lut = colours;
      channel = index < tiles() ? index : 0;
      if (!sameChannel) cursor = { row: 0, col: 0 };
      if (!(await loadChannel(channel, mine, own?.channel === channel ? own : null))) return false;
      const [tileH, tileW] = layer.tile;
      cursor = { row: Math.min(cursor.row, tileH - 1), col: Math.min(cursor.col, tileW - 1) };
      nodes.heading.textContent = t("features.detail.heading", { name: layer.name });
      const capped = layer.channels_shown < layer.channels;
      nodes.facts.textContent = [
        layer.type,
        shapeText(layer.shape),
        capped ? t("features.detail.capped", { shown: layer.channels_shown, count: layer.channels }) : "",
      ].filter(Boolean).join(" · ");
      nodes.overflow.hidden = layer.finite !== false;
      nodes.section.hidden = false;
      drawLegend();
      drawAtlas();
      drawChannel();
      return true;
    },
    /** The keyboard cursor in the enlarged channel (the unit Enter opens). */
    cursor() {
      return { ...cursor, channel };
    },
    hide() {
      ticket++;
      layer = null;
      nodes.section.hidden = true;
    },
  };
}
