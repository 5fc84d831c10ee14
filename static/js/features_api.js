// POST /api/features as multipart (a picture file and text fields), through api.js's client:
// a refusal becomes the same ApiError, so showErrors() puts each message next to the control it
// names.

import { ApiError, postForm } from "./api.js";

/** Send `fields` (and `file` when given) to /api/features; resolves to the parsed answer. */
export function postFeatures(fields, file, options) {
  return postForm("/api/features", fields, file, options);
}

const notLive = new Set(); // models the live route refused (not small): the normal route only

/**
 * The same answer through POST /api/features/live, with the pictures of `open` (the open layer
 * and its channel) and every layer's thumbnail inline (`answer.inline`): one round trip per
 * drawing update. A model the server does not take there (too big) goes to /api/features.
 */
export async function postLiveFeatures(fields, file, open, options) {
  if (notLive.has(fields.model)) return postFeatures(fields, file, options);
  const query = new URLSearchParams({ channel: open.channel });
  if (open.layer) query.set("layer", open.layer);
  try {
    return await postForm(`/api/features/live?${query}`, fields, file, options);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 422 && error.fields.model)) throw error;
    notLive.add(fields.model);
    return postFeatures(fields, file, options);
  }
}

/**
 * Why an answer of /api/features has no predictions, as a catalogue key: designed filters do not
 * classify, an untrained network recognises nothing, but weights that learned from data may come
 * without class names — a model uploaded without a labels file, a file imported with
 * `cnnviz weights add` whose origin is unknown — and then only the names are missing.
 */
export function noPredictionsKey(answer) {
  if (answer.mode === "handcrafted") return "features.predictions.handcrafted";
  if (answer.weights?.source === "uploaded") return "features.predictions.no_labels";
  if (answer.weights?.source === "imported") return "features.predictions.unnamed";
  return "features.predictions.none";
}
