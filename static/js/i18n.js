// Message catalogue for the browser. The server embeds the very catalogue it renders the template
// with (common + the page's) as <script type="application/json" id="messages">, so templates and
// modules speak the same strings and no request is needed.

import { withParticles } from "./particles.js";

let catalogue = null;

function load() {
  if (catalogue === null) {
    const node = document.getElementById("messages");
    catalogue = node ? JSON.parse(node.textContent) : {};
  }
  return catalogue;
}

/** The page language ("ko" or "en"), as the server chose it. */
export function language() {
  return document.documentElement.lang || "ko";
}

/** True when the catalogue holds `key`. */
export function has(key) {
  return Object.hasOwn(load(), key);
}

/**
 * The message for `key` with `{name}` placeholders filled from `params` (a Korean particle
 * marker right after one, such as `{n}(으)로`, agrees with the value: particles.js).
 * A missing key is a defect: it is logged as a console error (browser tests fail on those) and the
 * key itself is shown, so the page still works.
 */
export function t(key, params = {}) {
  const text = load()[key];
  if (text === undefined) {
    console.error(`i18n: missing message "${key}" (${language()})`);
    return key;
  }
  return withParticles(text, params); // 패딩 {padding}(으)로 → 패딩 1로, 패딩 3으로
}

/**
 * Fill text and attributes under `root` from data attributes, for markup built in JS:
 * `data-i18n="key"` sets textContent, `data-i18n-attr="aria-label:key title:key2"` sets attributes.
 */
export function translateTree(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(/\s+/).filter(Boolean)) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key));
    }
  }
}

/**
 * A header button's label: the whole text of `key` (also its accessible name) and, shown instead
 * on a narrow screen (base.css), the text of `${key}_short`.
 */
export function setButtonLabel(button, key, params = {}) {
  const long = document.createElement("span");
  long.className = "label-long";
  long.textContent = t(key, params);
  const short = document.createElement("span");
  short.className = "label-short";
  short.textContent = t(`${key}_short`, params);
  button.setAttribute("aria-label", long.textContent);
  button.replaceChildren(long, short);
}
