// The /features state of a unit's computation and of "why this prediction", declared once and
// spread into FEATURES_STATE: the URL holds the walk (so a link and follow mode reopen it).
// `unit` is the path of units opened, first click first, each "layer:channel:y:x", joined by "~"
// (layer names are dotted module paths: never ":" or "~").

const MAX_PATH = 32;
const ENTRY = /^([A-Za-z0-9_.]{1,200}):(\d{1,7}):(\d{1,7}):(\d{1,7})$/;

const pathCodec = {
  parse(text) {
    if (text === "") return [];
    const path = [];
    for (const entry of text.split("~").slice(0, MAX_PATH)) {
      const match = ENTRY.exec(entry);
      if (!match) return undefined;
      path.push({ layer: match[1], channel: Number(match[2]), y: Number(match[3]), x: Number(match[4]) });
    }
    return path;
  },
  format: (path) => path.map((u) => `${u.layer}:${u.channel}:${u.y}:${u.x}`).join("~"),
};

export const EXPLAIN_METHODS = ["gradcam", "gradcam_pp", "layercam", "saliency", "integrated_gradients", "occlusion"];

export const UNIT_STATE = [
  { name: "unit", type: "custom", default: [], ...pathCodec },
  { name: "why", type: "bool", default: false },
  { name: "cls", type: "int", default: -1, min: -1, max: 99999 }, // -1: the top class
  { name: "xlayer", type: "string", default: "", maxLength: 200 }, // "": the default layer
  // Grad-CAM++ first: at the default (deepest spatial) layer it lies on the object where plain
  // Grad-CAM can spread over a blank background (bundled LeNet-5: 0.74 of the map on the digit's
  // strokes against 0.35; docs/PERFORMANCE.md); Grad-CAM is one choice away
  { name: "method", type: "enum", values: EXPLAIN_METHODS, default: "gradcam_pp" },
  { name: "opacity", type: "float", default: 0.6, min: 0, max: 1 },
  { name: "patch", type: "int", default: 16, min: 1, max: 512 },
  { name: "ostride", type: "int", default: 8, min: 1, max: 512 },
];

export const MAX_UNIT_PATH = MAX_PATH;
