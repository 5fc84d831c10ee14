// JSON client for /api with error display. A 422 from the server looks like
// {"detail":[{"loc":["body","padding"],"msg":"...","type":"less_than_equal","ctx":{"le":3}}]}:
// each message is shown next to the control that carries data-error-for="<field>", anything else
// in the page's general error slot. Messages are translated by `type` (app/errors.py): the
// catalogue's error.type.<type> with the ctx values filled in, else the general message of the
// status (error.status.404, .413, .429), else the server's English `msg`.

import { has, language, t } from "./i18n.js";

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer at all)
   * @param {string} message readable summary
   * @param {Object<string,string>} fields field name → message ("*" for errors naming no field)
   */
  constructor(status, message, fields = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.fields = fields;
  }
}

/** The field an error location names: ["body","padding"] → "padding"; ["query","x"] → "x". */
function fieldOf(loc) {
  if (!Array.isArray(loc) || loc.length < 2) return "*";
  const name = loc[1];
  return typeof name === "string" ? name : "*";
}

/** A message parameter as text: allowed values listed, large integers grouped (1,048,576). */
function paramText(value) {
  if (Array.isArray(value)) return value.map(paramText).join(", ");
  if (Number.isInteger(value) && Math.abs(value) >= 10000) return value.toLocaleString(language());
  return String(value);
}

/**
 * The message of one error item in the page's language. A catalogue text is used only when every
 * placeholder it has is filled, so a server that sends less ctx never shows "{le}".
 * `retryAfter` (seconds, from the Retry-After header) stands in for a missing ctx.retry_after.
 */
function messageOf(item, status, retryAfter) {
  const ctx = item.ctx && typeof item.ctx === "object" ? item.ctx : {};
  const params = {};
  for (const [name, value] of Object.entries(ctx)) params[name] = paramText(value);
  if (params.retry_after === undefined && retryAfter) params.retry_after = retryAfter;
  const keys = [`error.status.${status}`];
  if (typeof item.type === "string" && /^\w+$/.test(item.type)) keys.unshift(`error.type.${item.type}`);
  for (const key of keys) {
    if (!has(key)) continue;
    const text = t(key, params);
    if (/\{\w+\}/.test(text)) continue;
    // a refusal about one file of several (a picture in an upload or a zip) names it
    return params.file && !text.includes(params.file) ? `${params.file}: ${text}` : text;
  }
  return item.msg ? String(item.msg) : t("error.server", { status });
}

function errorFromBody(status, body, retryAfter) {
  const fields = {};
  const detail = body && body.detail;
  // a string detail (404 "unknown model ...") has its type beside it; a non-JSON answer has none
  const items = Array.isArray(detail)
    ? detail
    : [{ msg: typeof detail === "string" ? detail : "", type: body?.type }];
  for (const item of items) {
    const field = fieldOf(item?.loc);
    const message = messageOf(item ?? {}, status, retryAfter);
    fields[field] = fields[field] ? `${fields[field]}; ${message}` : message;
  }
  if (Object.keys(fields).length === 0) fields["*"] = t("error.server", { status });
  return new ApiError(status, Object.values(fields).join("; "), fields);
}

/**
 * fetch with a JSON answer; resolves to the parsed body, rejects with ApiError (or AbortError).
 * `body` is sent as JSON, or as it is when it is FormData (multipart: a picture and fields);
 * `headers` are added to the request (a run's control token, for instance).
 */
export async function requestJSON(method, url, body, { signal, headers = {} } = {}) {
  const form = body instanceof FormData || body instanceof Blob; // sent as it is (a Blob: its own type)
  let response;
  try {
    response = await fetch(url, {
      method,
      signal,
      headers: body === undefined || form ? headers : { ...headers, "Content-Type": "application/json" },
      body: body === undefined || form ? body : JSON.stringify(body),
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, t("error.network"), { "*": t("error.network") });
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const wait = response.headers.get("Retry-After");
    const seconds = /^\d+$/.test(wait ?? "") ? wait : undefined;
    const error = errorFromBody(response.status, parsed, seconds);
    if (seconds !== undefined) error.retryAfter = Number(seconds);
    throw error;
  }
  return parsed;
}

export const getJSON = (url, options) => requestJSON("GET", url, undefined, options);
export const postJSON = (url, body, options) => requestJSON("POST", url, body, options);

/** POST multipart: `fields` as text parts, `file` (when given) as the `image` part. */
export function postForm(url, fields, file, options) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  if (file) form.append("image", file, file.name || "picture");
  return requestJSON("POST", url, form, options);
}

/** Milliseconds to wait before asking again after `error` (a 429's Retry-After), else `fallback`. */
export function retryDelay(error, fallback) {
  return Number.isFinite(error?.retryAfter) ? error.retryAfter * 1000 : fallback;
}

/** True for the rejection of a request cancelled by its AbortController. */
export function isAbort(error) {
  return error instanceof DOMException && error.name === "AbortError";
}

/**
 * "Latest wins": each call aborts the previous one still in flight, so a fast series of control
 * changes never paints an older answer over a newer one.
 *   const latest = latestOnly();  latest((signal) => postJSON(url, body, { signal }))
 */
export function latestOnly() {
  let controller = null;
  return (start) => {
    if (controller) controller.abort();
    controller = new AbortController();
    return start(controller.signal);
  };
}

/** Remove every error message shown under `root`. */
export function clearErrors(root) {
  for (const slot of root.querySelectorAll("[data-error-for]")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const control of root.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/**
 * Show `error` under `root`: each field's message in its [data-error-for=field] slot (and the
 * control named `field` marked aria-invalid), the rest in [data-error-for="*"].
 * `aliases` maps API field names to slot names where they differ (e.g. {kernels: "kernel"}).
 */
export function showErrors(root, error, aliases = {}) {
  clearErrors(root);
  const fields = error instanceof ApiError ? error.fields : { "*": String(error.message || error) };
  for (const [field, message] of Object.entries(fields)) {
    const name = aliases[field] || field;
    let slot = root.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
      if (control) control.setAttribute("aria-invalid", "true");
    } else {
      slot = root.querySelector('[data-error-for="*"]');
    }
    if (!slot) continue;
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    slot.hidden = false;
  }
}

/**
 * Heavy requests one at a time, the newest wish last: calling run() while `task` is in flight
 * only notes that it must run again, which it does once the current run ends. The server gives
 * each client few slots for heavy work, and an aborted fetch holds its slot until the server
 * has finished, so "latest wins" by aborting would still pile work up. `task` reads the page
 * state when it starts and catches its own errors.
 */
export function oneAtATime(task) {
  let running = null;
  let again = false;
  return function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await task();
      } while (again);
      running = null;
    })();
    return running;
  };
}

/**
 * A redraw for every configuration change, started at once rather than after a debounce: the
 * calls made while one event is handled (a control's change and the follow-up changes it
 * implies) become one run, started when that handling ends; calls while a run is in flight make
 * it run once more when it ends (oneAtATime), so a dragged slider or a held arrow key keeps one
 * request at a time in flight, and the last configuration is always drawn. `task(stale)` may
 * call `stale()` after its request: true when a newer configuration waits (no need to draw).
 */
export function coalesced(task) {
  let queued = false;
  let again = false;
  let running = false;
  const stale = () => again;
  async function loop() {
    running = true;
    do {
      again = false;
      await task(stale);
    } while (again);
    running = false;
  }
  return function run() {
    if (running) {
      again = true;
      return;
    }
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      if (running) again = true;
      else loop();
    });
  };
}
