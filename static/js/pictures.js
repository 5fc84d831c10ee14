// Pictures the API sends as PNG (URLs or data URLs), loaded and read back pixel by pixel: the
// grey levels of a map give its values back (value = low + level / 255 · (high − low)); and what
// the canvas views draw them with.

/** An <img> for `url`, once decoded. */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(url));
    image.src = url;
  });
}

/** The pixels of a loaded image as canvas ImageData (RGBA; a grey PNG has R = G = B = level). */
export function pixelsOf(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

/**
 * A canvas the size of grey `levels` (ImageData) whose every pixel is `paint(level)` → RGBA.
 * `paint` is asked once per grey level (256 at most), not once per pixel.
 */
export function paintLevels(levels, paint) {
  const canvas = document.createElement("canvas");
  canvas.width = levels.width;
  canvas.height = levels.height;
  const context = canvas.getContext("2d");
  const out = context.createImageData(levels.width, levels.height);
  const colours = Array.from({ length: 256 }, (_, level) => paint(level));
  for (let i = 0; i < levels.data.length; i += 4) out.data.set(colours[levels.data[i]], i);
  context.putImageData(out, 0, 0);
  return canvas;
}

/** A theme colour (CSS custom property `name`) as it applies to `element` now. */
export function cssColour(element, name, fallback) {
  return getComputedStyle(element).getPropertyValue(name).trim() || fallback;
}
