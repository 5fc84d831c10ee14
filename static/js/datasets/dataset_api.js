// A student's datasets over /api/datasets. The owner token the server gives once, at creation,
// is kept in localStorage (like a run's control token, train/run_tokens.js) and sent back as
// X-Dataset-Token with every change.

import { requestJSON } from "../api.js";

const KEY = "cnnviz.datasetTokens";
const session = new Map();

function stored() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) ?? "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

function remember(id, token) {
  session.set(id, token);
  try {
    localStorage.setItem(KEY, JSON.stringify({ ...stored(), [id]: token }));
  } catch {
    // storage refused: this page still owns the dataset until it is closed
  }
}

function forget(id) {
  session.delete(id);
  try {
    const { [id]: _, ...rest } = stored();
    localStorage.setItem(KEY, JSON.stringify(rest));
  } catch {
    // storage refused: nothing was kept there
  }
}

/** Ids of the datasets this browser made (it holds their tokens), oldest first. */
export function ownedIds() {
  return [...new Set([...Object.keys(stored()), ...session.keys()])].filter((id) => /^[0-9a-f]{16}$/.test(id));
}

/** This browser's dataset `id` as the server has it, or null (deleted meanwhile: forgotten). */
export async function ownDataset(id) {
  try {
    return await getDataset(id);
  } catch (error) {
    if (error.status !== 404) throw error;
    forget(id);
    return null;
  }
}

/** Delete dataset `id` with its pictures (409 while a run trains on it), then forget its token. */
export async function deleteDataset(id) {
  await requestJSON("DELETE", base(id), undefined, { headers: headers(id) });
  forget(id);
}

/** True when this browser made dataset `id` (it holds its token). */
export function owns(id) {
  return session.has(id) || Object.hasOwn(stored(), id);
}

/** The owner-token header of dataset `id` ({} when this browser does not own it). */
export function headers(id) {
  const token = session.get(id) ?? stored()[id];
  return token ? { "X-Dataset-Token": token } : {};
}

const base = (id) => `/api/datasets/${encodeURIComponent(id)}`;

/** A new dataset. It is made with a token this browser already holds (the server keeps that
 * token when it owns a dataset), so the server counts one browser's datasets together, not
 * every computer behind the school's one network address. */
export async function createDataset(name, classes) {
  const [held] = ownedIds();
  const options = held ? { headers: headers(held) } : undefined;
  const made = await requestJSON("POST", "/api/datasets", { name, classes }, options);
  remember(made.id, made.owner_token);
  return made.dataset;
}

export const getDataset = (id) => requestJSON("GET", base(id));
export const listPictures = (id) => requestJSON("GET", `${base(id)}/images`);

/** Pictures (Blobs or Files, each with a name) into class `classId`, from `source`. */
export function addPictures(id, classId, pictures, source = "file") {
  const form = new FormData();
  form.append("class_id", String(classId));
  form.append("source", source);
  for (const [name, blob] of pictures) form.append("files", blob, name);
  return requestJSON("POST", `${base(id)}/images`, form, { headers: headers(id) });
}

export function addArchive(id, file) {
  const form = new FormData();
  form.append("archive", file, file.name || "pictures.zip");
  return requestJSON("POST", `${base(id)}/archive`, form, { headers: headers(id) });
}

export const deletePicture = (id, digest) =>
  requestJSON("DELETE", `${base(id)}/images/${digest}`, undefined, { headers: headers(id) });

export const movePicture = (id, digest, classId) =>
  requestJSON("PATCH", `${base(id)}/images/${digest}`, { class_id: classId }, { headers: headers(id) });
