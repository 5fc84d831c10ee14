// The strip of layers: one card per layer output with a thumbnail of its maps, in the order the
// network computes them. A listbox: arrow keys move between cards, Enter or a click opens one.

import { t } from "./i18n.js";
import { shapeText } from "./format.js";

export const THUMB_SIDE = 160; // longest side of a thumbnail, in pixels (server-side shrink)

/**
 * @param {HTMLElement} root the listbox
 * @param {{onPick(name: string): void}} handlers
 */
export function createLayerStrip(root, { onPick }) {
  let cards = [];

  function focusCard(index) {
    const card = cards[Math.max(0, Math.min(cards.length - 1, index))];
    if (!card) return;
    for (const other of cards) other.tabIndex = -1;
    card.tabIndex = 0;
    card.focus();
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  root.addEventListener("keydown", (event) => {
    const index = cards.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (event.key in moves) focusCard(index + moves[event.key]);
    else if (event.key === "Home") focusCard(0);
    else if (event.key === "End") focusCard(cards.length - 1);
    else if (event.key === "Enter" || event.key === " ") onPick(cards[index].dataset.layer);
    else return;
    event.preventDefault();
  });
  root.addEventListener("click", (event) => {
    const card = event.target.closest("[data-layer]");
    if (card) onPick(card.dataset.layer);
  });

  return {
    /** Show `layers` (from the answer) with thumbnails in `colormap`; mark `selected`.
     * `thumbs`: layer name → the thumbnail already at hand (a data URL), else fetched. */
    render(layers, colormap, selected, thumbs = null) {
      cards = layers.map((layer, index) => {
        const card = document.createElement("div");
        card.className = "layer-card";
        card.setAttribute("role", "option");
        card.dataset.layer = layer.name;
        card.tabIndex = -1;
        const image = document.createElement("img");
        image.className = "layer-thumb";
        image.loading = "lazy";
        image.decoding = "async";
        image.alt = t("features.layer.thumb_alt", { name: layer.name });
        image.src = thumbs?.[layer.name] ?? `${layer.url}?colormap=${colormap}&max_side=${THUMB_SIDE}`;
        const name = document.createElement("span");
        name.className = "layer-name";
        name.textContent = `${index + 1}. ${layer.name}`;
        const meta = document.createElement("span");
        meta.className = "layer-meta";
        meta.textContent = `${layer.type} · ${shapeText(layer.shape)}`;
        card.append(image, name, meta);
        return card;
      });
      root.replaceChildren(...cards);
      this.select(selected);
    },
    /** Mark the card of `name` as the open layer (and the one Tab reaches). */
    select(name) {
      const chosen = cards.find((card) => card.dataset.layer === name) ?? cards[0];
      for (const card of cards) {
        card.setAttribute("aria-selected", String(card === chosen));
        card.tabIndex = card === chosen ? 0 : -1;
      }
      // Scroll the strip only (not the page) so the open layer's card is in view.
      // (From the boxes on screen: a card's offsetLeft counts from the page when the strip is
      // not positioned, which scrolled the first card half out of a 1920 px presenter view.)
      if (chosen) {
        const [box, view] = [chosen.getBoundingClientRect(), root.getBoundingClientRect()];
        root.scrollLeft += box.left - view.left - (root.clientWidth - box.width) / 2;
      }
    },
  };
}
