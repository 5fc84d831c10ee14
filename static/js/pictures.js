// Pictures the API sends as PNG (URLs or data URLs), loaded and read back pixel by pixel: the
// grey levels of a map give its values back (value = low + level / 255 · (high − low)).

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
