// THE grid renderer: every matrix cnnviz shows (inputs, kernels, feature maps, pooling windows)
// is drawn here. One DOM cell per number: text stays crisp at any zoom, cells are clickable and
// readable by tests, and a step only toggles the classes of the few cells whose highlight changed,
// which keeps playing at 60 fps on a 32×32 input (see benchmarks/conv_fps.py).
//
// Each row is a .grid-row element (its own paint unit, see base.css); cells carry data-row,
// data-col (logical coordinates) and data-value (full precision), which tests read.
//
// Coordinates are logical: `origin` is the coordinate of the top-left cell shown, so a padded
// input shows rows -padding..H+padding-1 and a window's rows from the trace address cells directly.

import { t } from "./i18n.js";
import { formatNumber } from "./format.js";
import { colorFor, luminance, rangeOf } from "./colormap.js";

const DENSE_BELOW_PX = 22; // below this cell size numbers are hidden; colour alone carries them
const MIN_TEXT_PX = 9; // ... and where the longest number would be smaller than this
// a cell's text: min(0.42 · cell, 1.45 · cell / characters), as .cell's font-size in base.css
const textPixels = (cell, chars) => Math.min(cell * 0.42, (cell * 1.45) / chars);

function cssPixels(style, property, fallback) {
  const value = parseFloat(style.getPropertyValue(property));
  return Number.isFinite(value) ? value : fallback;
}

/** What sizes a grid, read from its container: width, max-height (Infinity: none), cell bounds. */
function room(container, width) {
  const style = getComputedStyle(container);
  const height = parseFloat(style.maxHeight); // "none" → NaN: no limit
  return {
    width,
    height: Number.isFinite(height) ? height : Infinity,
    min: cssPixels(style, "--cell-min", 10),
    max: cssPixels(style, "--cell-max", 44),
  };
}

// One observer for every grid: the grids a redraw creates are all sized in one callback, which
// runs after layout and before paint, reading every container first and then writing every
// grid (sizing each grid as it was made forced one synchronous layout per grid).
// A grid made where another one was (the same parent, a redraw) starts at the size that one
// had: laid out once at its size, not at the default and again when the observer has measured.
const sizers = new Map(); // container → (room) => write the grid's size
const lastRoom = new WeakMap(); // a stack of grids → the room its last grid was measured to have
const stackOf = (container) => container.parentElement?.parentElement ?? container; // fit → figure → stack
const observer = new ResizeObserver((entries) => {
  const reads = entries
    .filter((entry) => sizers.has(entry.target))
    .map((entry) => [entry.target, room(entry.target, entry.contentRect.width)]);
  for (const [container, space] of reads) {
    lastRoom.set(stackOf(container), space);
    sizers.get(container)(space);
  }
});

/**
 * Draw a grid inside `container` (which it fills in width, within the theme's cell size bounds).
 * options:
 *   rows, cols          displayed size; origin [row, col] of the top-left cell (default [0, 0])
 *   inner {rows, cols}  the real cells, from logical (0, 0); others are drawn as padding
 *                       (zeros added around an input, or the cropped border of a transposed output)
 *   value(r, c)         number, or null for a cell not computed yet (drawn empty)
 *   range               {min, max} for the colours, "auto" (from the values, default) or null
 *   format(v)           text of a number (default formatNumber)
 *   chars               at least this many characters must fit a cell (for grids filled later)
 *   editable            inner cells can be edited: click / Enter, then onEdit(r, c, number)
 *   onHover(r, c)       pointer or keyboard focus on a cell; onHover(null, null) when it leaves
 *   onActivate(r, c)    click / Enter on a cell that is not editable
 *   label               accessible name of the grid
 * Returns { element, update(), setValue(r, c, v), highlight(name, cells), clear(name),
 *           cell(r, c), resize(), destroy() }. Highlight names map to CSS classes `hl-<name>`.
 */
export function createGrid(container, options) {
  const rows = options.rows;
  const cols = options.cols;
  const [row0, col0] = options.origin || [0, 0];
  const inner = options.inner || { rows: rows + row0, cols: cols + col0 };
  const format = options.format || formatNumber;
  let valueOf = options.value || (() => null);
  let range = options.range === undefined ? "auto" : options.range;
  const highlights = new Map();
  const cells = [];
  let active = [row0, col0];
  let editing = null;
  let chars = 2; // longest number shown: the font shrinks so it fits the cell
  let cellPixels = 0; // the cell size sizeTo chose (0: not sized yet)

  const element = document.createElement("div");
  element.className = "grid";
  element.setAttribute("role", "grid");
  element.setAttribute("aria-label", options.label || "");
  element.tabIndex = 0;
  element.dataset.ownKeys = "";
  element.style.setProperty("--cols", String(cols));

  const isInner = (r, c) => r >= 0 && c >= 0 && r < inner.rows && c < inner.cols;
  for (let i = 0; i < rows; i++) {
    const row = [];
    const band = document.createElement("div");
    band.className = "grid-row";
    band.setAttribute("role", "row");
    for (let j = 0; j < cols; j++) {
      const node = document.createElement("div");
      const r = row0 + i;
      const c = col0 + j;
      node.className = isInner(r, c) ? "cell" : "cell is-outside";
      node.setAttribute("role", "gridcell");
      node.dataset.row = String(r);
      node.dataset.col = String(c);
      row.push(node);
      band.append(node);
    }
    element.append(band);
    cells.push(row);
  }
  container.append(element);

  const cellAt = (r, c) => cells[r - row0]?.[c - col0] ?? null;
  const showDense = () => element.classList.toggle(
    "is-dense", cellPixels < DENSE_BELOW_PX || textPixels(cellPixels, chars) < MIN_TEXT_PX,
  );
  const setChars = (count) => {
    chars = count;
    element.style.setProperty("--chars", String(count));
    if (cellPixels) showDense();
  };

  function paint(node, r, c, value, currentRange) {
    const text = value === null || value === undefined ? "" : format(value);
    node.textContent = text;
    node.dataset.value = value === null || value === undefined ? "" : String(value);
    node.classList.toggle("is-pending", value === null || value === undefined);
    if (currentRange && text !== "" && isInner(r, c)) {
      const rgb = colorFor(value, currentRange);
      node.style.backgroundColor = `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
      node.classList.toggle("is-dark", luminance(rgb) < 0.18);
    } else {
      node.style.backgroundColor = "";
      node.classList.remove("is-dark");
    }
    return text.length;
  }

  function currentRange() {
    if (range !== "auto") return range;
    const values = [];
    for (let r = 0; r < inner.rows; r++) for (let c = 0; c < inner.cols; c++) values.push(valueOf(r, c));
    return rangeOf(values);
  }

  const grid = {
    element,
    rows,
    cols,
    origin: [row0, col0],
    /** Repaint every cell (new values: pass a new value function, or a new range). */
    update(newValue, newRange) {
      if (newValue) valueOf = newValue;
      if (newRange !== undefined) range = newRange;
      const resolved = currentRange();
      let longest = 2;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          const length = paint(cells[i][j], row0 + i, col0 + j, valueOf(row0 + i, col0 + j), resolved);
          if (length > longest) longest = length;
        }
      }
      setChars(Math.max(longest, options.chars ?? 0));
    },
    /** Repaint one cell (a progressively filled output); the colour range stays as it is. */
    setValue(r, c, value) {
      const node = cellAt(r, c);
      if (!node) return;
      const length = paint(node, r, c, value, range === "auto" ? null : range);
      if (length > chars) setChars(length);
    },
    /** Give exactly `list` ([[r, c], ...]) the class hl-<name>, touching only cells that change. */
    highlight(name, list) {
      const className = `hl-${name}`;
      const next = new Set();
      for (const [r, c] of list) {
        const node = cellAt(r, c);
        if (node) next.add(node);
      }
      const previous = highlights.get(name) || new Set();
      for (const node of previous) if (!next.has(node)) node.classList.remove(className);
      for (const node of next) if (!previous.has(node)) node.classList.add(className);
      highlights.set(name, next);
    },
    clear(name) {
      grid.highlight(name, []);
    },
    cell: cellAt,
    /** Fit the cell size to the container's width, within --cell-min / --cell-max. */
    resize() {
      sizeTo(room(container, container.clientWidth));
    },
    destroy() {
      observer.unobserve(container);
      sizers.delete(container);
      element.remove();
    },
  };

  /** Cells as large as the container's width and its max-height (when it has one) allow,
   * within the theme's --cell-min / --cell-max. */
  function sizeTo({ width, height, min, max }) {
    if (width === 0) return;
    const gap = 1;
    const byHeight = Math.floor((height - gap * (rows + 1)) / rows);
    const byWidth = Math.floor((width - gap * (cols + 1)) / cols);
    const size = Math.max(min, Math.min(max, byWidth, byHeight));
    element.style.setProperty("--cell", `${size}px`);
    // explicit size: the grid is size-contained (see .grid in base.css)
    element.style.width = `${cols * size + (cols + 1) * gap}px`;
    element.style.height = `${rows * size + (rows + 1) * gap}px`;
    cellPixels = size;
    showDense();
  }

  // --- editing ------------------------------------------------------------------------------
  const canEdit = (r, c) => Boolean(options.editable) && isInner(r, c);

  function startEdit(node) {
    if (editing) return;
    const r = Number(node.dataset.row);
    const c = Number(node.dataset.col);
    const field = document.createElement("input");
    field.type = "number";
    field.step = "any";
    field.className = "cell-editor";
    field.value = node.dataset.value;
    field.setAttribute("aria-label", t("grid.edit_cell", { row: r, col: c }));
    editing = { node, field };
    node.classList.add("is-editing");
    node.replaceChildren(field);
    field.focus();
    field.select();
    const finish = (commit) => {
      if (!editing) return;
      editing = null;
      node.classList.remove("is-editing");
      const value = Number(field.value);
      node.textContent = format(Number(node.dataset.value));
      if (commit && field.value.trim() !== "" && Number.isFinite(value)) options.onEdit?.(r, c, value);
      element.focus({ preventScroll: true });
    };
    field.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") finish(true);
      else if (event.key === "Escape") finish(false);
    });
    field.addEventListener("blur", () => finish(true));
  }

  function activate(node) {
    const r = Number(node.dataset.row);
    const c = Number(node.dataset.col);
    setActive(r, c);
    if (canEdit(r, c)) startEdit(node);
    else options.onActivate?.(r, c);
  }

  function setActive(r, c) {
    active = [Math.min(row0 + rows - 1, Math.max(row0, r)), Math.min(col0 + cols - 1, Math.max(col0, c))];
    grid.highlight("active", [active]);
  }

  element.addEventListener("click", (event) => {
    const node = event.target.closest(".cell");
    if (node && !node.classList.contains("is-editing")) activate(node);
  });
  element.addEventListener("pointerover", (event) => {
    const node = event.target.closest(".cell");
    if (node) options.onHover?.(Number(node.dataset.row), Number(node.dataset.col));
  });
  element.addEventListener("pointerleave", () => options.onHover?.(null, null));
  element.addEventListener("focus", () => {
    setActive(...active);
    options.onHover?.(...active);
  });
  element.addEventListener("blur", () => {
    if (!editing) options.onHover?.(null, null);
  });
  element.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[event.key]) {
      setActive(active[0] + moves[event.key][0], active[1] + moves[event.key][1]);
      options.onHover?.(...active);
    } else if (event.key === "Enter" || event.key === "F2") {
      const node = cellAt(...active);
      if (node) activate(node);
    } else if (event.key === "Escape") {
      element.blur();
    } else {
      return;
    }
    event.preventDefault();
  });

  sizers.set(container, sizeTo);
  const guess = lastRoom.get(stackOf(container));
  if (guess) sizeTo(guess);
  observer.observe(container); // (re)sized before the next paint (see `observer` above)
  grid.update();
  return grid;
}

/**
 * A grid with its caption, appended to `parent` as <figure class="grid-figure">; the grid fits the
 * figure's width. Same options as createGrid. Returns the grid (grid.figure is the figure).
 */
export function addGridFigure(parent, caption, options) {
  const figure = document.createElement("figure");
  figure.className = "grid-figure";
  const title = document.createElement("figcaption");
  title.textContent = caption;
  const fit = document.createElement("div");
  fit.className = "grid-fit";
  figure.append(title, fit);
  parent.append(figure);
  const grid = createGrid(fit, { label: caption, ...options });
  grid.figure = figure;
  return grid;
}
