// POST /api/features as multipart (a picture file and text fields), through api.js's client:
// a refusal becomes the same ApiError, so showErrors() puts each message next to the control it
// names.

import { postForm } from "./api.js";

/** Send `fields` (and `file` when given) to /api/features; resolves to the parsed answer. */
export function postFeatures(fields, file, options) {
  return postForm("/api/features", fields, file, options);
}
