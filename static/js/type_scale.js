// The page's type size against the browser's 16 px: 1.35 in presenter mode (base.css --scale
// makes the root font larger), more for a reader who set a larger default font. Drawings whose
// text is not laid out by CSS (canvas charts, SVG charts drawn at screen scale) multiply their
// px sizes by it, so they grow with the rem-sized text around them.

export const typeScale = () => parseFloat(getComputedStyle(document.documentElement).fontSize) / 16 || 1;

/** Call `redraw` whenever presenter mode is switched on or off (theme.js), i.e. the scale changes. */
export function onTypeScaleChange(redraw) {
  window.addEventListener("presenterchange", () => redraw(typeScale()));
}
