// A drawing pad: white strokes on black (as MNIST digits are), by mouse, pen or finger.
// `onStroke` is called after every drawn segment, so a caller can react while the stroke is
// still being drawn.

export class DrawingPad {
  constructor(canvas, { width = 12, onStroke = () => {} } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.width = width;
    this.onStroke = onStroke;
    this.last = null;
    this.drawn = false;
    this.clear();
    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    for (const name of ["pointerup", "pointerleave", "pointercancel"]) {
      canvas.addEventListener(name, () => (this.last = null));
    }
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [((event.clientX - box.left) * this.canvas.width) / box.width,
            ((event.clientY - box.top) * this.canvas.height) / box.height];
  }

  down(event) {
    this.canvas.setPointerCapture?.(event.pointerId);
    this.last = this.point(event);
    this.move(event);
  }

  move(event) {
    if (!this.last) return;
    const [x, y] = this.point(event);
    const c = this.context;
    c.strokeStyle = "#fff";
    c.lineWidth = this.width;
    c.lineCap = "round";
    c.beginPath();
    c.moveTo(...this.last);
    c.lineTo(x, y);
    c.stroke();
    this.last = [x, y];
    this.drawn = true;
    this.onStroke();
  }

  clear() {
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}
