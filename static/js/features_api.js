// POST /api/features as multipart (a picture file and text fields). api.js speaks JSON bodies
// only; this sends FormData and turns a refusal into the same ApiError, so showErrors() puts each
// message next to the control it names.

import { ApiError, isAbort } from "./api.js";
import { t } from "./i18n.js";

function refusal(status, body) {
  const fields = {};
  const detail = body && body.detail;
  for (const item of Array.isArray(detail) ? detail : []) {
    const field = Array.isArray(item.loc) && typeof item.loc[1] === "string" ? item.loc[1] : "*";
    fields[field] = fields[field] ? `${fields[field]}; ${item.msg}` : String(item.msg);
  }
  if (typeof detail === "string") fields["*"] = detail;
  if (Object.keys(fields).length === 0) fields["*"] = t("error.server", { status });
  return new ApiError(status, Object.values(fields).join("; "), fields);
}

/** Send `fields` (and `file` when given) to /api/features; resolves to the parsed answer. */
export async function postFeatures(fields, file, { signal } = {}) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  if (file) form.append("image", file, file.name || "picture");
  let response;
  try {
    response = await fetch("/api/features", { method: "POST", body: form, signal });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, t("error.network"), { "*": t("error.network") });
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw refusal(response.status, body);
  return body;
}
