// Page chrome shared by every page (loaded by base.html): presenter mode (P), fullscreen (F) and
// language links that keep the page's state. Presenter mode is a theme switch (CSS custom
// properties under .presenter: large type, high contrast, chrome hidden) and lives in the URL as
// ?present=1, so a teacher's link opens presenting.

import { flushAll } from "./state.js";
import { t } from "./i18n.js";

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
    toggle.textContent = t(on ? "presenter.off" : "presenter.on");
  }
  window.dispatchEvent(new CustomEvent("presenterchange", { detail: { on } }));
}

export function isPresenter() {
  return root.classList.contains("presenter");
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen?.();
  else root.requestFullscreen?.().catch(() => {});
}

function typingInto(target) {
  return target instanceof Element && Boolean(target.closest("input, select, textarea, [contenteditable]"));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typingInto(event.target)) return;
  if (event.key === "p" || event.key === "P") setPresenter(!isPresenter());
  else if (event.key === "f" || event.key === "F") toggleFullscreen();
  else return;
  event.preventDefault();
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
