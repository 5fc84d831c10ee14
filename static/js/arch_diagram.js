// The architecture diagram: a model's block tree (arch_tree.js) drawn top to bottom as an SVG.
// Layers and units are rounded boxes (name, operation, output shape, parameters, MACs); an open
// container is a frame around its parts; where paths fork and join (a residual addition, an
// Inception concatenation) the branches stand side by side and meet at a "+" or "concat" node.
// Every box is a button (Tab, Enter/Space): a container opens or closes, any box is picked (the
// page marks its layers in the table). Sizes come from measuring the text with the very fonts the
// SVG uses (set as presentation attributes: the CSP allows no inline style); colours are CSS.

import { t } from "./i18n.js";
import { formatCount, shapeText } from "./format.js";
import {
  buildTree, convKind, expandable, isWeight, operation, unitOperation, weightPath,
} from "./arch_tree.js";

const SVG = "http://www.w3.org/2000/svg";
const FONTS = { // role → weight, size (px, before the presenter scale), family variable
  name: ["600", 13.5, "--font"], op: ["400", 12.5, "--font"], num: ["400", 12, "--mono"],
  title: ["600", 13.5, "--font"], merge: ["700", 13, "--mono"], plus: ["700", 18, "--mono"],
};
const PAD = 7; // inside a box
const GAP = 18; // between stacked items: room for the arrow
const COLUMN_GAP = 14;
const FRAME = 9; // inside a frame, around its content
const FORK = 20; // from the fork to the branches' tops, and from their bottoms to the join
const MARGIN = 10;
const TITLE_LINE = 260; // widest one-line frame title over narrower content

/** A block's output shape, or the diagram's "not run" for a block that did not run. */
const outputShape = (shape) => shapeText(shape, t("arch.diagram.not_run"));

function node(tag, attrs = {}, parent = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  if (parent) parent.append(element);
  return element;
}

/** Text metrics with the page's own fonts (canvas measureText), scaled for presenter mode. */
function createMeasure() {
  const style = getComputedStyle(document.documentElement);
  const scale = Number(style.getPropertyValue("--scale")) || 1;
  const context = document.createElement("canvas").getContext("2d");
  const fonts = {};
  for (const [role, [weight, size, family]] of Object.entries(FONTS)) {
    const px = size * scale;
    fonts[role] = { weight, size: px, family: style.getPropertyValue(family).trim() || "sans-serif" };
  }
  const cache = new Map();
  return {
    fonts,
    lineHeight: (role) => Math.ceil(fonts[role].size * 1.3),
    width(text, role) {
      const key = `${role}|${text}`;
      if (!cache.has(key)) {
        const f = fonts[role];
        context.font = `${f.weight} ${f.size}px ${f.family}`;
        cache.set(key, Math.ceil(context.measureText(text).width));
      }
      return cache.get(key);
    },
  };
}

/**
 * createDiagram(root, { onPick(item), onToggle(openKeys) }) → { show(summary, openKeys),
 * pick(key), openAll(open) }. `openKeys`: keys whose open state differs from the default.
 */
export function createDiagram(root, { onPick, onToggle }) {
  let tree = [];
  let summary = null;
  let flipped = new Set();
  let picked = null;
  let measure = null;
  const byKey = new Map();

  const isOpen = (item) => item.openByDefault !== flipped.has(item.key);

  function toggle(item, focusKey) {
    if (flipped.has(item.key)) flipped.delete(item.key);
    else flipped.add(item.key);
    onToggle([...flipped]);
    draw(focusKey ?? item.key);
  }

  // --- pieces: each is { w, h, draw(g, x, y) } with its entry at top centre, exit at bottom --

  function textLines(lines) {
    const w = Math.max(...lines.map(([text, role]) => measure.width(text, role)));
    const h = lines.reduce((sum, [, role]) => sum + measure.lineHeight(role), 0);
    return { w, h };
  }

  function drawText(g, lines, x, y, anchor = "start") {
    let baseline = y;
    for (const [text, role, className] of lines) {
      const f = measure.fonts[role];
      baseline += measure.lineHeight(role);
      const line = node("text", {
        x, y: baseline - Math.round(f.size * 0.3), class: `dg-text dg-${role} ${className || ""}`,
        "font-size": f.size, "font-weight": f.weight, "font-family": f.family, "text-anchor": anchor,
      }, g);
      if (className === "dg-path") pathSpans(line, text);
      else line.textContent = text;
    }
  }

  /** "pw 1×1 → dw 3×3 /2 → pw 1×1" with each dw / pw step in its own colour (and its letters). */
  function pathSpans(line, text) {
    text.split(" → ").forEach((step, index) => {
      if (index > 0) node("tspan", {}, line).textContent = " → ";
      const kind = { dw: "is-depthwise", pw: "is-pointwise" }[step.slice(0, 2)] || "";
      node("tspan", { class: kind }, line).textContent = step;
    });
  }

  /** A button node: Tab-focusable, Enter/Space or click acts, described for screen readers. */
  function button(g, key, label, action, expanded) {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.setAttribute("aria-label", label);
    g.dataset.key = key;
    if (expanded !== undefined) g.setAttribute("aria-expanded", String(expanded));
    if (key === picked) g.classList.add("is-picked");
    g.addEventListener("click", action);
    g.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      action();
    });
  }

  /** A drawn thing that does nothing when pressed (the input, a join): named, not focusable. */
  function figure(g, label) {
    g.setAttribute("role", "img");
    g.setAttribute("aria-label", label);
    node("title", {}, g).textContent = label; // the tooltip
  }

  function describe(item, op) {
    return t("arch.diagram.label", {
      name: item.name, op, shape: outputShape(item.output),
      params: formatCount(item.params), macs: formatCount(item.macs),
    });
  }

  function pickItem(item) {
    picked = item.key;
    for (const old of root.querySelectorAll(".is-picked")) old.classList.remove("is-picked");
    root.querySelector(`[data-key="${CSS.escape(item.key)}"]`)?.classList.add("is-picked");
    onPick(item);
  }

  /** A box of text lines; `kind` adds a class (dw, pw, ...); `action: false` makes it inert. */
  function box(item, lines, options) {
    const { kind = "", role, expanded, action, key = item.key, pill = false, label } = options;
    const size = textLines(lines);
    const w = Math.max(pill ? 0 : 104, size.w + 2 * PAD);
    const h = size.h + (pill ? 8 : 2 * PAD);
    return {
      w, h,
      draw(parent, x, y) {
        const g = node("g", {
          class: `dg-node ${kind}`, "data-role": role, "data-layer": item.name,
        }, parent);
        node("rect", { x, y, width: w, height: h, rx: pill ? h / 2 : 8, class: "dg-box" }, g);
        drawText(g, lines, pill ? x + w / 2 : x + PAD, y + (pill ? 4 : PAD), pill ? "middle" : "start");
        const op = lines.length > 1 ? lines[1][0] : item.type;
        const name = label || describe(item, op);
        if (action === false) figure(g, name);
        else button(g, key, name, action || (() => pickItem(item)), expanded);
      },
    };
  }

  /** The lines every full box ends with: output shape, parameters, MACs. */
  const numberLines = (item) => [
    [`→ ${outputShape(item.output)}`, "num"],
    [t("arch.diagram.params", { count: formatCount(item.params) }), "num", "dg-muted"],
    [t("arch.diagram.macs", { count: formatCount(item.macs) }), "num", "dg-muted"],
  ];
  const pathLine = (rows) => {
    const path = weightPath(rows);
    return path ? [path, "op", "dg-path"] : [t("arch.diagram.layers", { count: rows.length }), "op"];
  };

  function convClass(item) {
    const weights = item.rows.filter(isWeight);
    const conv = item.conv ?? (weights.length === 1 ? convKind(weights[0]) : null);
    return conv ? `is-${conv}` : "";
  }

  function layerPiece(item) {
    const row = item.rows[0];
    if (item.params === 0 && item.macs === 0) {
      const text = `${item.label} · ${operation(row)} → ${outputShape(item.output)}`;
      const kind = row.type === "Identity" ? "is-identity" : "is-light";
      return box(item, [[text, "op"]], { kind, role: "layer", pill: true });
    }
    const lines = [[item.label, "name"], [operation(row), "op"], ...numberLines(item)];
    return box(item, lines, { kind: convClass(item), role: "layer" });
  }

  /** A closed container: its name, class, what it computes, its numbers; a click opens it. */
  function closedGroup(item) {
    const unit = item.synthetic || item.unit;
    const lines = [[`▸ ${item.label}`, "name"]];
    if (unit) lines.push([unitOperation(item.rows), "op"]);
    if (item.type) lines.push([item.type, "op", "dg-muted"]);
    if (!unit) lines.push(pathLine(item.rows));
    lines.push(...numberLines(item));
    return box(item, lines, {
      kind: `is-closed ${convClass(item)}`, role: unit ? "unit" : "group", expanded: false,
      action: () => { pickItem(item); toggle(item); },
    });
  }

  function stack(pieces) {
    const list = pieces.filter(Boolean);
    if (list.length === 0) return { w: 0, h: 0, draw() {} };
    const w = Math.max(...list.map((p) => p.w));
    const h = list.reduce((sum, p) => sum + p.h, 0) + GAP * (list.length - 1);
    return {
      w, h,
      draw(g, x, y) {
        let top = y;
        list.forEach((piece, index) => {
          if (index > 0) edge(g, `M${x + w / 2},${top - GAP}V${top}`);
          piece.draw(g, x + (w - piece.w) / 2, top);
          top += piece.h + GAP;
        });
      },
    };
  }

  function edge(g, d, className = "") {
    node("path", { d, class: `dg-edge ${className}`, "marker-end": "url(#dg-arrow)" }, g);
  }

  /** An open container: a frame with its title (a button that closes it) around `inner`. */
  function frame(item, inner, open) {
    const marker = open ? "▾" : "▸";
    const name = `${marker} ${item.label}`;
    const rest = `${item.type ? `${item.type}  ` : ""}→ ${outputShape(item.output)}`;
    // One line when it is not much wider than the content, else the class and shape go on a
    // second line: a phone's screen then holds the frames of MobileNet v2 and ResNet.
    let title = [[`${name}  ${rest}`, "title"]];
    if (textLines(title).w + 2 * PAD > Math.max(inner.w, TITLE_LINE)) {
      title = [[name, "title"], [rest, "op"]];
    }
    const size = textLines(title);
    const titleH = size.h + 8;
    const w = Math.max(inner.w, size.w + 2 * PAD) + 2 * FRAME;
    const h = titleH + inner.h + FRAME;
    return {
      w, h,
      draw(parent, x, y) {
        const g = node("g", {
          class: `dg-frame${item.merge ? " is-block" : ""}`, "data-block": item.name,
          "data-merge": item.merge?.kind,
        }, parent);
        node("rect", { x, y, width: w, height: h, rx: 12, class: "dg-frame-box" }, g);
        const head = node("g", {
          class: "dg-node dg-title", "data-role": "frame", "data-layer": item.name,
        }, g);
        const titleW = size.w + 2 * PAD - 6;
        node("rect", {
          x: x + 3, y: y + 3, width: titleW, height: titleH - 4, rx: 6, class: "dg-box",
        }, head);
        drawText(head, title, x + PAD, y + 4);
        const action = () => { pickItem(item); toggle(item); };
        button(head, item.key, describe(item, item.type), action, open);
        inner.draw(g, x + (w - inner.w) / 2, y + titleH);
      },
    };
  }

  function branchLabel(item, branch) {
    if (branch.role === "main") return t("arch.diagram.main");
    if (branch.role === "shortcut") return t("arch.diagram.projection");
    const heads = new Set(branch.rows.map((row) => row.name.slice(item.name.length + 1).split(".")[0]));
    return heads.size === 1 ? [...heads][0] : t("arch.diagram.branch", { n: branch.index + 1 });
  }

  /** One lane of a join: an identity pill, the branch's parts (open) or one box for it (closed). */
  function branchPiece(item, branch, open) {
    const key = `${item.key}/${branch.index}`;
    const lane = {
      ...item, key, rows: branch.rows, params: branch.params, macs: branch.macs, output: branch.output,
    };
    if (branch.identity) {
      lane.name = branch.rows[0]?.name ?? item.name;
      const lines = [[t("arch.diagram.identity"), "op"]];
      const label = t("arch.diagram.identity_label", { name: item.name, shape: outputShape(lane.output) });
      return box(lane, lines, { kind: "is-identity", role: "branch-box", pill: true, key, label });
    }
    if (open) {
      const only = branch.items.length === 1 ? branch.items[0] : null;
      const opens = only && only.kind === "group" && !only.unit && !only.merge;
      return stack((opens ? only.children : branch.items).map(piece));
    }
    const lines = [
      [`▸ ${branchLabel(item, branch)}`, "name"], pathLine(branch.rows), ...numberLines(lane),
    ];
    return box(lane, lines, {
      kind: `is-closed ${convClass(lane)}`, role: "branch-box", expanded: false, key,
      action: () => { pickItem(lane); toggle(item, item.key); },
    });
  }

  /** The "+" (addition) or "concat → C×H×W" node where the branches meet. */
  function joinPiece(item) {
    const { merge } = item;
    const add = merge.kind === "add";
    const text = add ? "+" : t("arch.diagram.concat", { shape: outputShape(merge.output) });
    const role = add ? "plus" : "merge";
    const w = add ? 28 : measure.width(text, role) + 2 * PAD;
    const h = add ? 28 : measure.lineHeight(role) + 8;
    return {
      w, h,
      draw(parent, x, y) {
        const g = node("g", {
          class: `dg-merge is-${merge.kind}`, "data-kind": merge.kind, "data-block": item.name,
        }, parent);
        figure(g, add ? t("arch.diagram.add", { shape: outputShape(merge.output) }) : text);
        node("rect", { x, y, width: w, height: h, rx: h / 2, class: "dg-join" }, g);
        drawText(g, [[text, role]], x + w / 2, y + (h - measure.lineHeight(role)) / 2, "middle");
      },
    };
  }

  /** Before-layers, the fork, the branches side by side, the join node, the after-layers. */
  function mergePiece(item, open) {
    const { merge } = item;
    const before = merge.before.length ? stack(merge.before.map(piece)) : null;
    const after = merge.after.length ? stack(merge.after.map(piece)) : null;
    const lanes = merge.branches.map((branch) => ({ branch, piece: branchPiece(item, branch, open) }));
    const rowW = lanes.reduce((sum, lane) => sum + lane.piece.w, 0) + COLUMN_GAP * (lanes.length - 1);
    const rowH = Math.max(...lanes.map((lane) => lane.piece.h));
    const join = joinPiece(item);
    const w = Math.max(rowW, join.w, before?.w ?? 0, after?.w ?? 0);
    const h = (before ? before.h : 0) + FORK + rowH + FORK + join.h + (after ? GAP + after.h : 0);

    /** A lane: edge from the fork, the branch, edge to the join (dashed for a shortcut). */
    function drawLane(g, { branch, piece: column }, left, fork, rowTop, spine) {
      const cx = left + column.w / 2;
      const lane = node("g", {
        class: `dg-branch is-${branch.role}`, "data-role": "branch", "data-block": item.name,
        "data-branch": String(branch.index),
      }, g);
      const dashed = branch.role === "shortcut" ? "is-shortcut" : "";
      edge(lane, `M${spine},${fork}V${fork + FORK / 2}H${cx}V${rowTop}`, dashed);
      column.draw(lane, left, rowTop);
      const rowBottom = rowTop + rowH;
      const joinY = rowBottom + FORK / 2;
      edge(lane, `M${cx},${rowTop + column.h}V${joinY}H${spine}V${rowBottom + FORK}`, dashed);
    }

    return {
      w, h,
      draw(g, x, y) {
        const spine = x + w / 2;
        let fork = y;
        if (before) {
          before.draw(g, x + (w - before.w) / 2, fork);
          fork += before.h;
        } else {
          node("circle", { cx: spine, cy: fork + 2, r: 3, class: "dg-fork" }, g);
        }
        const rowTop = fork + FORK;
        let left = x + (w - rowW) / 2;
        for (const lane of lanes) {
          drawLane(g, lane, left, fork, rowTop, spine);
          left += lane.piece.w + COLUMN_GAP;
        }
        const joinTop = rowTop + rowH + FORK;
        join.draw(g, spine - join.w / 2, joinTop);
        if (after) {
          edge(g, `M${spine},${joinTop + join.h}V${joinTop + join.h + GAP}`);
          after.draw(g, x + (w - after.w) / 2, joinTop + join.h + GAP);
        }
      },
    };
  }

  function piece(item) {
    byKey.set(item.key, item);
    if (item.kind === "layer") return layerPiece(item);
    const open = isOpen(item);
    if (item.merge) return frame(item, mergePiece(item, open), open);
    if (!open) return closedGroup(item);
    return frame(item, stack(item.children.map(piece)), true);
  }

  function inputPiece() {
    const { channels, height, width } = summary.input;
    const text = t("arch.diagram.input", { shape: `${channels}×${height}×${width}` });
    const input = { key: "input", name: "input", rows: [], params: 0, macs: 0 };
    input.output = [channels, height, width];
    const options = { kind: "is-input", role: "input", pill: true, action: false, label: text };
    return box(input, [[text, "op"]], options);
  }

  function draw(focusKey = null) {
    // One measure (and its width cache) for every redraw: the fonts change only with presenter mode.
    measure ??= createMeasure();
    byKey.clear();
    const whole = stack([inputPiece(), ...tree.map(piece)]);
    const width = whole.w + 2 * MARGIN;
    const height = whole.h + 2 * MARGIN;
    const svg = node("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, class: "dg-svg", role: "group",
      "aria-label": t("arch.diagram.aria", { model: summary.model }),
    });
    const marker = node("marker", {
      id: "dg-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
      markerUnits: "userSpaceOnUse", orient: "auto-start-reverse",
    }, node("defs", {}, svg));
    node("path", { d: "M0,0L10,5L0,10z", class: "dg-arrowhead" }, marker);
    whole.draw(svg, MARGIN, MARGIN);
    // The spine (the diagram's centre line) stays where the reader had it: a new model starts
    // centred on it (an Inception module is wider than a phone), opening a block that widens
    // the drawing keeps the spine in place.
    const old = root.firstChild;
    const fromSpine = old
      ? Number(old.getAttribute("width")) / 2 - root.scrollLeft
      : root.clientWidth / 2;
    const top = old ? root.scrollTop : 0;
    root.replaceChildren(svg);
    root.scrollLeft = width / 2 - fromSpine;
    root.scrollTop = top;
    if (focusKey) svg.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  }

  // Presenter mode scales the type: measure afresh and lay out again.
  window.addEventListener("presenterchange", () => {
    measure = null;
    if (summary) draw();
  });

  return {
    show(next, openKeys = []) {
      if (summary?.model !== next.model) root.replaceChildren();
      summary = next;
      tree = buildTree(next);
      flipped = new Set(openKeys);
      draw();
    },
    /** Mark the box with this key as picked (from the URL on load). */
    pick(key) {
      picked = key;
      const item = byKey.get(key);
      if (item) pickItem(item);
    },
    /** Open (true) or close (false) every block; units (conv · BN · ReLU) stay closed. */
    openAll(open) {
      const blocks = expandable(tree).filter((item) => !item.unit && !item.synthetic);
      flipped = new Set(blocks.filter((item) => item.openByDefault !== open).map((item) => item.key));
      onToggle([...flipped]);
      draw();
    },
  };
}
