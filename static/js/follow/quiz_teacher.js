// The teacher's side of the live class quiz (app/quiz.py). On a lesson page with a class session
// running, each question gets an "Ask the class" button. Asking opens the quiz panel: the question, how many of the followers have
// answered, the spread of their answers (polled, one request at a time), then "Reveal" (everyone
// sees the worked answer) and "Close". The panel comes back after a reload or on another page
// while the question is open.

import { getJSON } from "../api.js";
import { t } from "../i18n.js";
import { barsOf, drawSpread } from "./quiz_spread.js";
import { showWorked, textsOf } from "./quiz_worked.js";
import { button, element } from "./dom.js";

const POLL_MS = 250; // the spread on the projector lags the students' phones by about this

/** `session()` is the live session ({code, teacher_token}) or null. */
export function teacherQuiz(session) {
  let panel = null;
  let quiz = null; // the question as followers see it (from the snapshot), or null
  let pollTimer = null;
  let polling = false;
  let shown = "";

  const headers = () => ({ "X-Teacher-Token": session().teacher_token });
  const base = () => `/api/sessions/${session().code}`;

  async function send(method, path, body) {
    const response = await fetch(base() + path, {
      method,
      headers: { ...headers(), "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const parsed = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = parsed.detail;
      throw new Error(Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail ?? response.statusText));
    }
    return parsed;
  }

  function buildPanel() {
    const node = element("aside", "quiz-panel", { "aria-labelledby": "quiz-panel-title" });
    const title = element("h2", "quiz-panel-title", { id: "quiz-panel-title" });
    title.textContent = t("quiz.title");
    node.append(
      title,
      element("p", "quiz-question-text"),
      element("p", "quiz-question-label"),
      element("p", "quiz-count", { "aria-live": "polite" }),
      element("div", "quiz-spread"),
      element("div", "quiz-worked"),
      element("p", "form-error quiz-error", { role: "alert" }),
    );
    const actions = element("div", "quiz-actions");
    actions.append(
      button("quiz-reveal", t("quiz.reveal"), reveal),
      button("secondary quiz-close", t("quiz.close"), close),
    );
    node.append(actions);
    document.body.append(node);
    return node;
  }

  function showError(error) {
    if (!panel) return;
    const slot = panel.querySelector(".quiz-error");
    slot.textContent = error ? t("quiz.error", { message: error.message }) : "";
    slot.hidden = !error;
  }

  function renderQuestion() {
    panel ??= buildPanel();
    panel.hidden = false;
    const texts = textsOf(quiz);
    panel.dataset.quizId = String(quiz.id);
    panel.dataset.status = quiz.status;
    panel.querySelector(".quiz-question-text").textContent = texts.text;
    panel.querySelector(".quiz-question-label").textContent = texts.ask;
    panel.querySelector(".quiz-reveal").hidden = quiz.status !== "open";
    const worked = panel.querySelector(".quiz-worked");
    if (quiz.worked) showWorked(worked, quiz);
    else worked.replaceChildren();
    showError(null);
  }

  function renderTally(state) {
    const tally = state.quiz;
    const key = JSON.stringify(state);
    if (!tally || key === shown) return;
    shown = key;
    panel.querySelector(".quiz-count").textContent =
      tally.status === "revealed"
        ? t("quiz.correct", { count: tally.correct, answered: tally.answered })
        : t("quiz.answered", { count: tally.answered, followers: state.followers });
    panel.dataset.answered = String(tally.answered);
    const options = quiz ? textsOf(quiz).options : [];
    const bars = barsOf(tally.kind, tally.spread, { options, reveal: tally.status === "revealed" });
    if (bars.length === 0) {
      const empty = element("p", "quiz-empty");
      empty.textContent = t("quiz.waiting");
      panel.querySelector(".quiz-spread").replaceChildren(empty);
    } else {
      drawSpread(panel.querySelector(".quiz-spread"), bars, t("quiz.spread"));
    }
  }

  async function poll() {
    pollTimer = null;
    if (!session() || !quiz || polling) return;
    polling = true;
    try {
      renderTally(await send("GET", "/quiz"));
    } catch (error) {
      showError(error);
    } finally {
      polling = false;
      if (session() && quiz) pollTimer = window.setTimeout(poll, POLL_MS);
    }
  }

  /** The question as followers see it now (after asking, revealing, or on a new page). */
  async function refresh() {
    const snapshot = await getJSON(base());
    quiz = snapshot.quiz;
    shown = "";
    if (!quiz) {
      hide();
      return;
    }
    renderQuestion();
    window.clearTimeout(pollTimer);
    poll();
  }

  function hide() {
    quiz = null;
    window.clearTimeout(pollTimer);
    pollTimer = null;
    if (panel) panel.hidden = true;
  }

  async function ask(question) {
    try {
      await send("POST", "/quiz", { question });
      await refresh();
    } catch (error) {
      panel ??= buildPanel();
      panel.hidden = false;
      showError(error);
    }
  }

  async function reveal() {
    if (!quiz) return;
    try {
      await send("POST", `/quiz/${quiz.id}/reveal`);
      await refresh();
    } catch (error) {
      showError(error);
    }
  }

  async function close() {
    try {
      await send("DELETE", "/quiz");
    } catch {
      /* the session may be gone: the panel goes anyway */
    }
    hide();
  }

  /** An "Ask the class" button under each question of a lesson page. */
  function mountAskButtons() {
    const lesson = document.querySelector("article.lesson[data-lesson]");
    if (!lesson || lesson.querySelector(".quiz-ask")) return;
    for (const item of lesson.querySelectorAll(".question[data-question]")) {
      const ref = `${lesson.dataset.lesson}.${item.dataset.question}`;
      const row = element("div", "quiz-ask");
      const ask_ = button("secondary quiz-ask-button", t("quiz.ask"), () => ask(ref));
      ask_.dataset.question = ref;
      row.append(ask_);
      item.querySelector(".question-text")?.after(row);
    }
  }

  return {
    /** A session is live (started now, or carried over from the previous page). */
    started() {
      mountAskButtons();
      refresh().catch(() => {});
    },
    /** The session ended: no buttons, no panel. */
    ended() {
      hide();
      for (const node of document.querySelectorAll(".quiz-ask")) node.remove();
    },
  };
}
