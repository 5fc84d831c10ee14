// The stepping player shared by every explorer: play/pause, step ±1, first/last, a scrub slider,
// a speed picker and the keyboard (space, ←, →, Home, End). It knows nothing of convolution: it
// moves an index through [0, count) and calls onStep(index, source); the page draws that step.
// Animation runs on requestAnimationFrame; a whole step is drawn per frame, never a request.

import { t } from "./i18n.js";

const SPEEDS = [0.5, 1, 2, 4, 8, 16, 32, 60]; // steps per second
const ICONS = {
  first: "M6 5h2v14H6zM20 5v14L9 12z",
  prev: "M18 5v14L7 12zM5 5h2v14H5z",
  play: "M7 4v16l13-8z",
  pause: "M6 4h4v16H6zM14 4h4v16h-4z",
  next: "M6 5v14l11-7zM17 5h2v14h-2z",
  last: "M4 5v14l11-7zM16 5h2v14h-2z",
};
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

/** The speed a page starts at: slower where the reader asked for reduced motion. */
export function defaultSpeed() {
  return reducedMotion.matches ? 1 : 4;
}

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function button(action, label) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = `player-button player-${action}`;
  node.dataset.action = action;
  node.setAttribute("aria-label", label);
  node.title = label;
  node.append(icon(action === "toggle" ? "play" : action));
  return node;
}

/** Keys typed into a form control or a grid belong to that control, not to the player. */
function ownsKeys(target) {
  if (!(target instanceof Element)) return false;
  return Boolean(target.closest("input, select, textarea, [contenteditable], [data-own-keys]"));
}

/**
 * Build a player inside `root`.
 * options: count, index, speed (steps/s), onStep(index, source) with source "play" | "user",
 *          onPlayingChange(playing), keyboard (bind the document keys; one player per page).
 * Returns { index, count, playing, speed, seek(i), step(delta), play(), pause(), toggle(),
 *           setCount(n, index), setSpeed(s), destroy() }.
 */
export function createPlayer(root, options = {}) {
  const onStep = options.onStep || (() => {});
  const onPlayingChange = options.onPlayingChange || (() => {});
  let count = Math.max(0, options.count ?? 0);
  let index = 0;
  let speed = options.speed ?? defaultSpeed();
  let playing = false;
  let frame = null;
  let lastTime = null;
  let carried = 0; // fraction of a step carried between frames

  root.classList.add("player");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", t("player.label"));
  const first = button("first", t("player.first"));
  const prev = button("prev", t("player.prev"));
  const toggle = button("toggle", t("player.play"));
  const next = button("next", t("player.next"));
  const last = button("last", t("player.last"));
  const scrub = document.createElement("input");
  scrub.type = "range";
  scrub.className = "player-scrub";
  scrub.min = "0";
  scrub.step = "1";
  scrub.setAttribute("aria-label", t("player.scrub"));
  const position = document.createElement("output");
  position.className = "player-position";
  position.setAttribute("aria-live", "off");
  const speedLabel = document.createElement("label");
  speedLabel.className = "player-speed";
  const speedText = document.createElement("span");
  speedText.textContent = t("player.speed");
  const speedSelect = document.createElement("select");
  for (const value of SPEEDS) {
    const option = document.createElement("option");
    option.value = String(value);
    option.textContent = t("player.speed_value", { speed: value });
    speedSelect.append(option);
  }
  speedLabel.append(speedText, speedSelect);
  const buttons = document.createElement("div");
  buttons.className = "player-buttons";
  buttons.append(first, prev, toggle, next, last);
  root.replaceChildren(buttons, scrub, position, speedLabel);

  function render() {
    const empty = count === 0;
    scrub.max = String(Math.max(0, count - 1));
    scrub.value = String(index);
    scrub.disabled = empty;
    position.textContent = t("player.position", { index: empty ? 0 : index + 1, count });
    for (const node of [first, prev]) node.disabled = empty || index === 0;
    for (const node of [next, last]) node.disabled = empty || index >= count - 1;
    toggle.disabled = empty;
    const label = t(playing ? "player.pause" : "player.play");
    toggle.setAttribute("aria-label", label);
    toggle.title = label;
    toggle.replaceChildren(icon(playing ? "pause" : "play"));
    toggle.setAttribute("aria-pressed", String(playing));
    root.classList.toggle("is-playing", playing);
  }

  function go(target, source) {
    if (count === 0) return;
    const clamped = Math.min(count - 1, Math.max(0, target));
    if (clamped === index) return;
    index = clamped;
    // Cheap per-frame updates only; the full render() runs on user actions and play/pause.
    scrub.value = String(index);
    position.textContent = t("player.position", { index: index + 1, count });
    onStep(index, source);
  }

  function tick(now) {
    frame = null;
    if (!playing) return;
    if (lastTime !== null) carried += ((now - lastTime) / 1000) * speed;
    lastTime = now;
    const whole = Math.floor(carried);
    if (whole > 0) {
      carried -= whole;
      go(index + whole, "play");
      if (index >= count - 1) {
        player.pause();
        return;
      }
    }
    frame = requestAnimationFrame(tick);
  }

  const player = {
    get index() { return index; },
    get count() { return count; },
    get playing() { return playing; },
    get speed() { return speed; },
    seek(target) {
      go(target, "user");
      render();
    },
    step(delta) {
      player.pause();
      player.seek(index + delta);
    },
    play() {
      if (playing || count === 0) return;
      if (index >= count - 1) go(0, "user");
      playing = true;
      lastTime = null;
      carried = 1; // the first step follows the press at once
      frame = requestAnimationFrame(tick);
      render();
      onPlayingChange(true);
    },
    pause() {
      if (!playing) return;
      playing = false;
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      render();
      onPlayingChange(false);
    },
    toggle() {
      if (playing) player.pause();
      else player.play();
    },
    /** New data (e.g. a new trace): a new length, keeping the position where it still exists. */
    setCount(newCount, newIndex = index) {
      count = Math.max(0, newCount);
      index = Math.min(Math.max(0, newIndex), Math.max(0, count - 1));
      if (count === 0) player.pause();
      render();
    },
    setSpeed(value) {
      const nearest = SPEEDS.reduce((a, b) => (Math.abs(b - value) < Math.abs(a - value) ? b : a));
      speed = nearest;
      speedSelect.value = String(nearest);
    },
    destroy() {
      player.pause();
      document.removeEventListener("keydown", onKey);
      root.replaceChildren();
    },
  };

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || ownsKeys(event.target)) return;
    const isButton = event.target instanceof HTMLButtonElement;
    switch (event.key) {
      case " ":
        if (isButton) return; // space activates the focused button, as everywhere else
        player.toggle();
        break;
      case "ArrowRight":
        player.step(+1);
        break;
      case "ArrowLeft":
        player.step(-1);
        break;
      case "Home":
        player.step(-count);
        break;
      case "End":
        player.step(+count);
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  buttons.addEventListener("click", (event) => {
    const action = event.target.closest("button")?.dataset.action;
    if (action === "toggle") player.toggle();
    else if (action === "first") player.step(-count);
    else if (action === "prev") player.step(-1);
    else if (action === "next") player.step(+1);
    else if (action === "last") player.step(+count);
  });
  scrub.addEventListener("input", () => {
    player.pause();
    player.seek(Number(scrub.value));
  });
  speedSelect.addEventListener("change", () => {
    player.setSpeed(Number(speedSelect.value));
    options.onSpeedChange?.(speed);
  });
  if (options.keyboard !== false) document.addEventListener("keydown", onKey);

  player.setSpeed(speed);
  player.setCount(count, options.index ?? 0);
  return player;
}

export { SPEEDS };
