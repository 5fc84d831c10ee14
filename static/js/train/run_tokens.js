// The control tokens of the runs this browser started. The server gives a run's token only to
// whoever started it (POST /api/runs answers `owner_token`); pause, resume and stop send it back
// as X-Run-Token. Kept in localStorage so a reload, or the page opened again later, still
// controls its own runs; runs started elsewhere (another browser, `cnnviz train`) have none.

const KEY = "cnnviz.runTokens";
const KEPT = 200; // the newest runs' tokens; older ones are forgotten
const session = new Map(); // tokens of this page's lifetime, whatever the storage allows

function load() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) ?? "[]");
    return Array.isArray(stored) ? stored.filter((pair) => Array.isArray(pair) && pair.length === 2) : [];
  } catch {
    return []; // storage refused (private mode) or damaged: no tokens, nothing breaks
  }
}

/** Remember the token of a run this page has just started. */
export function rememberRunToken(id, token) {
  const pairs = load().filter(([known]) => known !== id);
  pairs.push([id, token]);
  try {
    localStorage.setItem(KEY, JSON.stringify(pairs.slice(-KEPT)));
  } catch {
    // storage full or refused: this page still controls the run until it is closed
  }
  session.set(id, token);
}

/** The token of run `id`, or null when this browser did not start it. */
export function runToken(id) {
  if (session.has(id)) return session.get(id);
  const found = load().find(([known]) => known === id);
  return found ? found[1] : null;
}

/** Headers for a control request on run `id` (empty when this browser has no token). */
export function controlHeaders(id) {
  const token = runToken(id);
  return token ? { "X-Run-Token": token } : {};
}
