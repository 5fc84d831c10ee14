// An explorer framed in a lesson (?embed=1; base.html loads this module only then). The lesson
// page around it owns follow mode and the URL a teacher shares, so this frame reports its page
// state to the lesson on every change and takes the state the lesson sends: the lesson's link
// (reload), or the teacher's explorer when a student follows. Presenter mode and the P / F keys
// travel the same way (theme.js).

import { watchStates } from "./state.js";

const lesson = window.parent !== window ? window.parent : null;
const origin = window.location.origin;
const states = [];
let reportQueued = false;
let reported = false; // the first report tells the lesson that this frame has just loaded

function values() {
  return Object.assign({}, ...states.map((state) => state.values()));
}

/** Tell the lesson this explorer's state, once per burst of changes. */
function report() {
  if (reportQueued) return;
  reportQueued = true;
  queueMicrotask(() => {
    reportQueued = false;
    lesson.postMessage({ cnnviz: "explorer-state", values: values(), first: !reported }, origin);
    reported = true;
  });
}

/** Set the fields each state owns; the page's own subscribers then redraw. */
function apply(incoming) {
  for (const state of states) {
    const patch = {};
    for (const [name, value] of Object.entries(incoming)) if (state.has(name)) patch[name] = value;
    state.set(patch);
  }
}

if (lesson) {
  watchStates((state) => {
    states.push(state);
    state.subscribe(report);
    report();
  });
  window.addEventListener("message", (event) => {
    if (event.source !== lesson || event.origin !== origin) return;
    const values = event.data?.cnnviz === "explorer-apply" ? event.data.values : null;
    if (values && typeof values === "object") apply(values);
  });
}
