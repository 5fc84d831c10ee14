// The unit panel of /features: one unit of one layer written out with the actual numbers —
// the breadcrumb of the walk back, the shared player moving the unit over its map, the window
// and kernel as shared grids (grid.js), the arithmetic (unit_math.js), the receptive field boxed
// on the picture and a link that opens the same window and kernel in /conv.

import { t } from "../i18n.js";
import { formatExact } from "../format.js";
import { createGrid } from "../grid.js";
import { createPlayer } from "../player.js";
import { node, writeMath } from "../math_lines.js";
import { sourceName, unitLines } from "./unit_math.js";
import { convLink } from "./unit_links.js";

const GRID_CHANNELS = 3; // windows drawn as grids; the arithmetic lists every shown channel

/** Rows/cols of a window split into the padding before, the real cells, the padding after. */
function paddedSpan(taps, size) {
  const before = taps.filter((v) => v < 0).length;
  const after = taps.filter((v) => v >= size).length;
  return { before, real: taps.length - before - after };
}

export function createUnitPanel(nodes, { onWalk, onMove, onCrumb }) {
  const grids = [];
  let unit = null;
  const player = createPlayer(nodes.player, {
    keyboard: true,
    onStep(index, source) {
      if (!unit || source !== "user" && source !== "play") return;
      const [, , width] = mapShape(unit);
      onMove(Math.floor(index / width), index % width, unit.shape.length === 3 ? null : index);
    },
  });

  function mapShape(u) {
    return u.shape.length === 3 ? u.shape : [u.shape[0], 1, u.shape[0]];
  }

  function clearGrids() {
    while (grids.length) grids.pop().destroy();
    nodes.grids.replaceChildren();
  }

  function gridFigure(caption, options, parent = nodes.grids) {
    const figure = node("figure", "unit-grid");
    const container = node("div", "unit-grid-cells");
    figure.append(node("figcaption", "", caption), container);
    parent.append(figure);
    grids.push(createGrid(container, options));
    return grids[grids.length - 1];
  }

  function drawWindows(u, sourceShape) {
    const d = u.detail;
    if (u.kind === "conv") {
      const [height, width] = sourceShape.slice(-2);
      const rows = paddedSpan(d.rows, height);
      const cols = paddedSpan(d.cols, width);
      d.in_channels.slice(0, GRID_CHANNELS).forEach((c, k) => {
        // each channel's window and kernel side by side: they wrap together, never apart
        const pair = node("div", "unit-pair");
        nodes.grids.append(pair);
        gridFigure(t("unit.window", { channel: c, layer: sourceName(d.source) }), {
          rows: d.rows.length, cols: d.cols.length, origin: [-rows.before, -cols.before],
          inner: { rows: rows.real, cols: cols.real },
          value: (r, q) => d.window[k][r + rows.before][q + cols.before],
          label: t("unit.window", { channel: c, layer: sourceName(d.source) }),
          onActivate: (r, q) => r >= 0 && q >= 0 && r < rows.real && q < cols.real
            && onWalk(d.source, c, d.rows[r + rows.before], d.cols[q + cols.before]),
        }, pair);
        gridFigure(t("unit.kernel", { channel: c }), {
          rows: d.rows.length, cols: d.cols.length,
          value: (r, q) => d.kernel[k][r][q], label: t("unit.kernel", { channel: c }),
        }, pair);
      });
    } else if (u.kind === "max_pool" || u.kind === "avg_pool") {
      const grid = gridFigure(t("unit.window", { channel: u.channel, layer: sourceName(d.source) }), {
        rows: d.rows.length, cols: d.cols.length,
        value: (r, q) => (d.inside[r][q] ? d.window[r][q] : null),
        label: t("unit.window", { channel: u.channel, layer: sourceName(d.source) }),
        onActivate: (r, q) => d.inside[r][q] && onWalk(d.source, u.channel, d.rows[r], d.cols[q]),
      });
      if (d.winner) grid.highlight("window", [d.winner]);
    }
  }

  function drawCrumbs(path) {
    nodes.crumbs.replaceChildren(...path.map((entry, k) => {
      const item = node("li");
      const label = t("unit.crumb", { layer: entry.layer, channel: entry.channel, row: entry.y, col: entry.x });
      if (k === path.length - 1) {
        item.append(node("span", "unit-crumb is-current", label));
        item.lastChild.setAttribute("aria-current", "step");
      } else {
        const button = node("button", "unit-crumb", label);
        button.type = "button";
        button.addEventListener("click", () => onCrumb(k));
        item.append(button);
      }
      return item;
    }));
  }

  return {
    /** Draw `next` (an API answer) reached by `path`; `context` gives the source's shape. */
    show(next, path, context) {
      unit = next;
      nodes.section.hidden = false;
      drawCrumbs(path);
      nodes.heading.textContent = t("unit.heading", {
        layer: next.layer, channel: next.channel, row: next.y, col: next.x });
      const difference = Math.abs(next.total - next.value);
      nodes.facts.replaceChildren(
        node("span", "", `${next.type} · ${t(`unit.kind.${next.kind}`, { branch: (next.detail.branch ?? 0) + 1, offset: next.detail.offset ?? 0 })}`),
        node("span", "unit-value", t("unit.value", { value: formatExact(next.value, 6) })),
        node("span", "unit-total", t("unit.recomputed", { total: formatExact(next.total, 6),
          // a true minus: a line never breaks inside "3.0e−8" (it did after "e-" on a phone)
          difference: difference.toExponential(1).replace("-", "\u2212") })),
      );
      nodes.facts.dataset.value = String(next.value);
      nodes.facts.dataset.total = String(next.total);
      const [, height, width] = mapShape(next);
      const spatial = next.shape.length === 3;
      player.setCount(spatial ? height * width : next.shape[0], spatial ? next.y * width + next.x : next.channel);
      clearGrids();
      drawWindows(next, context.sourceShape ?? []);
      nodes.grids.hidden = grids.length === 0; // only convolutions draw windows; no empty box
      writeMath(nodes.math, t("unit.math_heading"), "", unitLines(next, onWalk), false);
      const link = next.kind === "conv" ? convLink(next) : null;
      nodes.convLink.hidden = !link;
      if (link) nodes.convLink.href = link;
    },
    hide() {
      unit = null;
      clearGrids();
      nodes.section.hidden = true;
    },
  };
}
