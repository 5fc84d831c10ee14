// Page state as one declarative table, kept in the URL query so any view is a shareable link
// (tensorflow/playground's state.ts, in spirit). Each page declares
//   [{ name, type, default, min, max, values, parse, format }]
// types: "int", "float", "bool", "enum" (values: [...strings]), "string", "list" (comma separated
// strings), "custom" (own parse(text) → value | undefined and format(value) → text).
// Query parameters the table does not own (lang, present, ...) are left untouched.

const WRITE_INTERVAL_MS = 200; // browsers throttle replaceState floods; playing writes `step` often
const registry = new Set();
const watchers = new Set(); // told of every page state, made now or later (follow.js)

function clamp(value, field) {
  let result = value;
  if (field.min !== undefined) result = Math.max(field.min, result);
  if (field.max !== undefined) result = Math.min(field.max, result);
  return result;
}

const CODECS = {
  int: {
    parse: (text, field) => (/^-?\d+$/.test(text) ? clamp(Number(text), field) : undefined),
    format: (value) => String(value),
  },
  float: {
    parse: (text, field) => {
      const value = Number(text);
      return text.trim() !== "" && Number.isFinite(value) ? clamp(value, field) : undefined;
    },
    format: (value) => String(value),
  },
  bool: {
    parse: (text) => ({ 1: true, true: true, 0: false, false: false })[text],
    format: (value) => (value ? "1" : "0"),
  },
  enum: {
    parse: (text, field) => (field.values.map(String).includes(text) ? text : undefined),
    format: (value) => String(value),
  },
  string: {
    parse: (text, field) => (text.length <= (field.maxLength ?? 200) ? text : undefined),
    format: (value) => value,
  },
  list: {
    parse: (text) => (text === "" ? [] : text.split(",")),
    format: (value) => value.join(","),
  },
};

function codecFor(field) {
  if (field.type === "custom") return { parse: field.parse, format: field.format };
  const codec = CODECS[field.type];
  if (!codec) throw new Error(`state: unknown type "${field.type}" for "${field.name}"`);
  return codec;
}

/**
 * Create the state of one page from its table, reading the current URL.
 * Returns { has(name), get(name), values(), set(patch), subscribe(fn), query(), flush() }.
 * `set` coerces each value through its codec (out of range → clamped, invalid → ignored),
 * writes the URL (throttled, trailing write guaranteed) and calls subscribers with
 * (changedNames: Set, values) once per set() that changed anything.
 */
export function createState(schema) {
  const fields = new Map(schema.map((field) => [field.name, { ...field, codec: codecFor(field) }]));
  const current = {};
  const listeners = new Set();
  let lastWrite = 0;
  let pendingWrite = null;

  const formatted = (name, value) => fields.get(name).codec.format(value, fields.get(name));
  // A value from elsewhere (a class session's snapshot) may not fit the field at all (a number
  // for a list): the codec may throw on it; such a value is ignored like any invalid one.
  const coerce = (name, value) => {
    const field = fields.get(name);
    try {
      return field.codec.parse(field.codec.format(value, field), field);
    } catch {
      return undefined;
    }
  };

  const params = new URLSearchParams(window.location.search);
  for (const [name, field] of fields) {
    const text = params.get(name);
    const parsed = text === null ? undefined : field.codec.parse(text, field);
    current[name] = parsed === undefined ? field.default : parsed;
  }

  function writeURL() {
    pendingWrite = null;
    lastWrite = performance.now();
    const url = new URL(window.location.href);
    for (const name of fields.keys()) url.searchParams.set(name, formatted(name, current[name]));
    window.history.replaceState(window.history.state, "", url);
  }

  function scheduleWrite() {
    if (pendingWrite !== null) return;
    const wait = Math.max(0, lastWrite + WRITE_INTERVAL_MS - performance.now());
    if (wait === 0) writeURL();
    else pendingWrite = setTimeout(writeURL, wait);
  }

  const state = {
    has(name) {
      return fields.has(name);
    },
    get(name) {
      if (!fields.has(name)) throw new Error(`state: no field "${name}"`);
      return current[name];
    },
    values() {
      return { ...current };
    },
    set(patch) {
      const changed = new Set();
      for (const [name, value] of Object.entries(patch)) {
        if (!fields.has(name)) throw new Error(`state: no field "${name}"`);
        const next = coerce(name, value);
        if (next === undefined) continue;
        if (formatted(name, next) !== formatted(name, current[name])) {
          current[name] = next;
          changed.add(name);
        }
      }
      if (changed.size === 0) return changed;
      scheduleWrite();
      for (const listener of [...listeners]) listener(changed, state.values());
      return changed;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    /** The query string of this page's state alone (for links and follow mode). */
    query() {
      const query = new URLSearchParams();
      for (const name of fields.keys()) query.set(name, formatted(name, current[name]));
      return query.toString();
    },
    /** Write the URL now (before navigating away, e.g. on a language switch). */
    flush() {
      if (pendingWrite !== null) clearTimeout(pendingWrite);
      writeURL();
    },
  };
  registry.add(state);
  for (const watch of watchers) watch(state);
  writeURL(); // the URL shows the complete state from the first moment (defaults included)
  return state;
}

/** Write every page state's URL now; the header calls this before following a link. */
export function flushAll() {
  for (const state of registry) state.flush();
}

/** Call fn(state) for every page state: those already made and each one made later. */
export function watchStates(fn) {
  for (const state of registry) fn(state);
  watchers.add(fn);
}
