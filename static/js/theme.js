// Page chrome shared by every page (loaded by base.html): presenter mode (P), fullscreen (F) and
// language links that keep the page's state. Presenter mode is a theme switch (CSS custom
// properties under .presenter: large type, high contrast, chrome hidden) and lives in the URL as
// ?present=1, so a teacher's link opens presenting.

import { flushAll } from "./state.js";
import { setButtonLabel } from "./i18n.js";

const root = document.documentElement;

function setURLParam(name, value) {
  const url = new URL(window.location.href);
  if (value === null) url.searchParams.delete(name);
  else url.searchParams.set(name, value);
  window.history.replaceState(window.history.state, "", url);
}

/** Turn presenter mode on or off (and say so in the URL and on the toggle button). */
export function setPresenter(on) {
  root.classList.toggle("presenter", on);
  setURLParam("present", on ? "1" : null);
  const toggle = document.getElementById("presenter-toggle");
  if (toggle) {
    toggle.setAttribute("aria-pressed", String(on));
    setButtonLabel(toggle, on ? "presenter.off" : "presenter.on");
  }
  window.dispatchEvent(new CustomEvent("presenterchange", { detail: { on } }));
}

export function isPresenter() {
  return root.classList.contains("presenter");
}

/** Full screen on or off for the whole page. */
export function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen?.();
  else root.requestFullscreen?.().catch(() => {});
}

function typingInto(target) {
  return target instanceof Element && Boolean(target.closest("input, select, textarea, [contenteditable]"));
}

// An explorer framed in a lesson (?embed=1, base.html marks <html class="embed">): presenter mode
// and full screen belong to the lesson around it, which also tells the frame when to present.
const parentLesson = root.classList.contains("embed") && window.parent !== window ? window.parent : null;

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typingInto(event.target)) return;
  const key = event.key.toLowerCase();
  if (key !== "p" && key !== "f") return;
  event.preventDefault();
  if (parentLesson) parentLesson.postMessage({ cnnviz: "key", key }, window.location.origin);
  else if (key === "p") setPresenter(!isPresenter());
  else toggleFullscreen();
});

window.addEventListener("message", (event) => {
  if (!parentLesson || event.source !== parentLesson || event.origin !== window.location.origin) return;
  if (event.data?.cnnviz === "presenter") setPresenter(Boolean(event.data.on));
});

document.getElementById("presenter-toggle")?.addEventListener("click", () => setPresenter(!isPresenter()));

// A language link carries the page's current state (written to the URL as the user works).
for (const link of document.querySelectorAll("[data-lang-link]")) {
  link.addEventListener("click", (event) => {
    flushAll();
    const url = new URL(window.location.href);
    url.searchParams.set("lang", link.dataset.langLink);
    event.preventDefault();
    window.location.assign(url);
  });
}

setPresenter(new URLSearchParams(window.location.search).get("present") === "1");
