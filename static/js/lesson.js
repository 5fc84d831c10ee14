// Lesson pages (/lessons, /lessons/<slug>) and the lesson list on the home page.
// - Progress lives in localStorage: lessons opened and lessons marked done; cards show it.
// - A lesson page: ← → and Page Up / Page Down (what presentation clickers send) go to the
//   previous / next lesson while the page itself has the focus; inside the embedded explorer its
//   own keys apply (space, ←, →), since key presses in a frame stay in the frame.
// - The embedded explorer (same origin, ?embed=1) grows to its content's height, follows the
//   lesson's presenter mode, and hands P and F back to the lesson (theme.js posts them here).
// - The lesson's state (the answers shown, the framed explorer's state as embed.js reports it)
//   lives in the lesson's URL, so a link reopens what the teacher showed, and follow mode
//   (follow.js, which publishes page states) mirrors both onto the students' lesson pages.

import { postJSON } from "./api.js";
import { t } from "./i18n.js";
import { createState } from "./state.js";
import { isPresenter, setPresenter, toggleFullscreen } from "./theme.js";

const STORE_KEY = "cnnviz.lessons.v1";
const MESSAGE = "cnnviz"; // the tag on messages between a lesson and its explorer frame
const MIN_FRAME_CAP = 900; // px: the frame may always grow to this height before it scrolls

/* ------------------------------------------------------------------ progress ----------------- */

function readProgress() {
  try {
    const stored = JSON.parse(window.localStorage.getItem(STORE_KEY) ?? "{}");
    return {
      visited: new Set(Array.isArray(stored.visited) ? stored.visited : []),
      done: new Set(Array.isArray(stored.done) ? stored.done : []),
    };
  } catch {
    return { visited: new Set(), done: new Set() }; // storage off (private mode) or corrupted
  }
}

function writeProgress(progress) {
  try {
    window.localStorage.setItem(STORE_KEY, JSON.stringify({
      visited: [...progress.visited],
      done: [...progress.done],
    }));
  } catch {
    /* storage full or disabled: progress is a convenience, the lesson works without it */
  }
}

/** Show "done" / "opened" on every card [data-lesson] that has .lesson-mark badges. */
function showMarks(progress) {
  for (const card of document.querySelectorAll(".lesson-card[data-lesson]")) {
    const slug = card.dataset.lesson;
    const done = progress.done.has(slug);
    card.classList.toggle("is-done", done);
    for (const mark of card.querySelectorAll(".lesson-mark")) {
      mark.hidden = mark.dataset.mark === "done" ? !done : done || !progress.visited.has(slug);
    }
  }
}

/** On the index: "n of N done" and a link to the first lesson not done yet. */
function showSummary(progress) {
  const line = document.getElementById("lessons-progress");
  if (!line) return;
  const cards = [...document.querySelectorAll(".lesson-card[data-lesson]")];
  const done = cards.filter((card) => progress.done.has(card.dataset.lesson)).length;
  line.textContent = done ? t("lessons.progress", { done, count: cards.length }) : "";
  const next = cards.find((card) => !progress.done.has(card.dataset.lesson));
  if (!next || done === 0) return;
  const source = next.querySelector("h2 a");
  const link = document.createElement("a");
  link.href = source.href;
  link.className = "lessons-continue";
  link.textContent = t("lessons.continue", {
    number: cards.indexOf(next) + 1,
    title: source.textContent.replace(/^\s*\d+\.\s*/, "").trim(),
  });
  line.append(" ", link);
}

/* ------------------------------------------------------------------ one lesson --------------- */

function typingInto(target) {
  return target instanceof Element
    && Boolean(target.closest("input, select, textarea, [contenteditable], iframe"));
}

function bindLessonKeys(article) {
  const targets = {
    ArrowLeft: article.dataset.previous,
    PageUp: article.dataset.previous,
    ArrowRight: article.dataset.next,
    PageDown: article.dataset.next,
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) return;
    if (typingInto(event.target)) return;
    const target = targets[event.key];
    if (!target) return;
    event.preventDefault();
    const url = new URL(target, window.location.href);
    if (isPresenter()) url.searchParams.set("present", "1"); // keep presenting across lessons
    window.location.assign(url);
  });
}

function bindDoneButton(button, slug, progress) {
  const render = () => {
    const done = progress.done.has(slug);
    button.setAttribute("aria-pressed", String(done));
    button.textContent = t(done ? "lessons.marked_done" : "lessons.mark_done");
  };
  button.addEventListener("click", () => {
    if (progress.done.has(slug)) progress.done.delete(slug);
    else progress.done.add(slug);
    writeProgress(progress);
    render();
  });
  render();
}

/** Whether the frame finished loading before this module ran (its load event is then gone). */
const loadedAlready = (frame) =>
  frame.contentDocument?.readyState === "complete" && frame.contentDocument.body?.childElementCount;

/** The explorer frame: height of its content, the lesson's presenter mode, P and F handed back. */
function bindFrame(frame) {
  const tell = () => frame.contentWindow?.postMessage(
    { [MESSAGE]: "presenter", on: isPresenter() }, window.location.origin);
  let observer = null;
  const loaded = () => {
    tell();
    const body = frame.contentDocument?.body;
    if (!body) return;
    const fit = () => {
      // The body's own height, not the frame document's scroll height (never below the frame's);
      // a very long explorer (a whole GoogLeNet table) scrolls inside a frame of two screens.
      const content = Math.ceil(body.getBoundingClientRect().height);
      const height = Math.min(content, Math.max(2 * window.innerHeight, MIN_FRAME_CAP));
      if (height > 0 && Math.abs(height - frame.clientHeight) > 2) frame.style.height = `${height}px`;
    };
    observer?.disconnect();
    observer = new ResizeObserver(fit);
    observer.observe(body);
    fit();
  };
  frame.addEventListener("load", loaded);
  if (loadedAlready(frame)) loaded();
  window.addEventListener("presenterchange", tell);
  window.addEventListener("message", (event) => {
    if (event.origin !== window.location.origin || event.source !== frame.contentWindow) return;
    if (event.data?.[MESSAGE] !== "key") return;
    if (event.data.key === "p") setPresenter(!isPresenter());
    else if (event.data.key === "f") toggleFullscreen();
  });
}

/* ------------------------------------------------------------------ answering -------------- */

/**
 * A question the student answers: the typed number or the chosen option goes to
 * POST /api/questions/<lesson>.<question>/check (the server compares it with the answer cnncore
 * computed); a right answer opens the worked answer, a wrong one invites another try.
 */
function bindAnswerCheck(form) {
  const result = form.querySelector(".check-result");
  const details = form.closest(".question").querySelector("details.answer");
  const given = () => {
    if (form.dataset.kind === "choice") return form.querySelector("input[name=answer]:checked")?.value ?? "";
    return form.querySelector("input[name=answer]").value.trim();
  };
  const say = (text, verdict) => {
    result.textContent = text;
    result.classList.toggle("is-correct", verdict === true);
    result.classList.toggle("is-wrong", verdict === false);
    form.dataset.verdict = verdict === undefined ? "" : String(verdict);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = given();
    if (answer === "") {
      say(t(form.dataset.kind === "choice" ? "lessons.pick_one" : "lessons.not_a_number"), undefined);
      return;
    }
    try {
      const verdict = await postJSON(`/api/questions/${form.dataset.ref}/check`, { answer });
      if (!verdict.understood) say(t(form.dataset.kind === "choice" ? "lessons.pick_one" : "lessons.not_a_number"), undefined);
      else if (verdict.correct) {
        const shown = form.dataset.kind === "choice" ? form.querySelector("input[name=answer]:checked").parentElement.textContent.trim() : answer;
        say(t("lessons.correct", { value: shown }), true);
        if (!details.open) details.open = true; // the worked answer follows a right answer
      } else say(t("lessons.wrong"), false);
    } catch (error) {
      say(error.message, undefined);
    }
  });
  form.addEventListener("input", () => say("", undefined));
}

/* ------------------------------------------------------------------ lesson state ------------ */

/** An object of field values as JSON in the URL (the framed explorer's state); "" is none. */
const explorerCodec = {
  type: "custom",
  default: null,
  parse(text) {
    if (text === "") return null;
    try {
      const value = JSON.parse(text);
      return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
    } catch {
      return undefined;
    }
  },
  format: (value) => (value === null ? "" : JSON.stringify(value)),
};

/** Answers shown ⇄ the state's `open` list (a teacher opening one opens it for followers). */
function bindAnswers(state) {
  const questions = [...document.querySelectorAll(".question[data-question]")];
  const details = (question) => question.querySelector("details.answer");
  const show = (open) => {
    for (const question of questions) {
      const wanted = open.includes(question.dataset.question);
      if (details(question).open !== wanted) details(question).open = wanted;
    }
  };
  for (const question of questions) {
    details(question).addEventListener("toggle", () => {
      state.set({ open: questions.filter((q) => details(q).open).map((q) => q.dataset.question) });
    });
  }
  state.subscribe((changed, values) => {
    if (changed.has("open")) show(values.open);
  });
  show(state.get("open"));
}

/**
 * The frame's explorer state ⇄ the lesson state's `explorer` field. A freshly loaded frame gets
 * the lesson's (from its URL, or from the teacher) before it may report its own; after that
 * each report from the frame is the lesson's new state, and each change from outside (follow
 * mode) is sent into the frame.
 */
function bindExplorerState(frame, state) {
  let fromFrame = false;
  const send = (values) => frame.contentWindow?.postMessage(
    { [MESSAGE]: "explorer-apply", values }, window.location.origin);
  window.addEventListener("message", (event) => {
    if (event.origin !== window.location.origin || event.source !== frame.contentWindow) return;
    if (event.data?.[MESSAGE] !== "explorer-state") return;
    const wanted = state.get("explorer");
    if (event.data.first && wanted) {
      send(wanted);
      return;
    }
    fromFrame = true;
    try {
      state.set({ explorer: event.data.values });
    } finally {
      fromFrame = false;
    }
  });
  state.subscribe((changed, values) => {
    if (changed.has("explorer") && !fromFrame && values.explorer) send(values.explorer);
  });
  // A frame that finished loading before this module ran has already sent its first report.
  if (loadedAlready(frame) && state.get("explorer")) send(state.get("explorer"));
}

/* ------------------------------------------------------------------ wiring ------------------- */

const progress = readProgress();
const article = document.querySelector("article.lesson[data-lesson]");
if (article) {
  const slug = article.dataset.lesson;
  progress.visited.add(slug);
  writeProgress(progress);
  bindLessonKeys(article);
  const button = document.getElementById("lesson-done");
  if (button) bindDoneButton(button, slug, progress);
  const frame = document.getElementById("explorer-frame");
  const state = createState([
    { name: "open", type: "list", default: [] },
    ...(frame ? [{ name: "explorer", ...explorerCodec }] : []),
  ]);
  bindAnswers(state);
  for (const form of document.querySelectorAll("form.answer-check[data-ref]")) bindAnswerCheck(form);
  if (frame) {
    bindFrame(frame);
    bindExplorerState(frame, state);
  }
}
showMarks(progress);
showSummary(progress);
document.body.dataset.ready = "true";
