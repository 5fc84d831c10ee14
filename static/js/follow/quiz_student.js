// A student's side of the live class quiz: the question the teacher asked appears in a card under
// the follow bar (whether or not the student follows the page just now); the student types a
// number (or picks a choice) and sends it, and may change it until the teacher reveals the
// answer; then the card shows the worked answer, whether the student's answer was right, and how
// the class answered. One answer per student: the page draws a random id once per tab.

import { t } from "../i18n.js";
import { barsOf, drawSpread } from "./quiz_spread.js";
import { answerText, showWorked, textsOf } from "./quiz_worked.js";
import { element } from "./dom.js";

const ID_KEY = "cnnviz.quiz.student";
const ANSWER_KEY = "cnnviz.quiz.answer"; // {code, quiz, value}: kept over a reload

/** A random id (crypto.getRandomValues works on plain http, e.g. a LAN address; randomUUID
 * does not). */
export function studentId() {
  let id = window.sessionStorage.getItem(ID_KEY);
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    window.sessionStorage.setItem(ID_KEY, id);
  }
  return id;
}

const POWER = /^([+-]?[\d.]+)(?:\*|x|×|·)10\^?([+-]?\d+)$/;
const FRACTION = /^([+-]?[\d.]+)\/([\d.]+)$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const MAX_CHARS = 64; // the longest answer the server reads (app/schemas/sessions.py)

const decimal = (text) => (DECIMAL.test(text) ? Number(text) : NaN);

/** A number as a person types it (61,706 · 0.417 · 5.6×10^-5 · 1/4), read as the server reads
 * it (app/lesson_answers/check.py `parse_number`), or null: the page says so before sending. */
export function readNumber(text) {
  if (text.length > MAX_CHARS) return null;
  const cleaned = text.normalize("NFKC").replace(/[\s,_\u2009\u202f]/g, "").replace(/−/g, "-").replace(/[%×]+$/, "");
  let match;
  let value;
  if ((match = POWER.exec(cleaned))) value = decimal(match[1]) * 10 ** Number(match[2]);
  else if ((match = FRACTION.exec(cleaned))) value = decimal(match[1]) / decimal(match[2]);
  else value = decimal(cleaned);
  return Number.isFinite(value) ? value : null;
}

function savedAnswer(code, quizId) {
  try {
    const saved = JSON.parse(window.sessionStorage.getItem(ANSWER_KEY));
    return saved && saved.code === code && saved.quiz === quizId ? saved.value : null;
  } catch {
    return null;
  }
}

/** The quiz card of follower page `code`, placed after `anchor`; `show(quiz)` with each
 * snapshot's quiz (null: no question asked). */
export function studentQuiz(code, anchor) {
  let card = null;
  let current = null; // {id, status}
  let answer = null;

  function build(quiz) {
    const node = element("section", "quiz-card", { "aria-labelledby": "quiz-card-title" });
    const title = element("h2", "quiz-card-title", { id: "quiz-card-title" });
    title.textContent = t("quiz.title");
    const form = element("form", "quiz-form");
    const texts = textsOf(quiz);
    const choice = quiz.question.kind === "choice";
    const label = element(choice ? "p" : "label", "quiz-input-label", choice ? {} : { for: "quiz-input" });
    label.textContent = texts.ask;
    form.append(label);
    if (choice) {
      texts.options.forEach((option, index) => {
        const choice = element("label", "quiz-choice");
        const radio = element("input", "", { type: "radio", name: "quiz-choice", value: String(index) });
        choice.append(radio, document.createTextNode(` ${option}`));
        form.append(choice);
      });
    } else {
      form.append(element("input", "quiz-input", { id: "quiz-input", inputmode: "decimal", autocomplete: "off", enterkeyhint: "send", required: "" }));
    }
    const send = element("button", "quiz-send", { type: "submit" });
    send.textContent = t("quiz.send");
    form.append(send, element("p", "quiz-sent", { role: "status" }), element("p", "form-error quiz-error", { role: "alert" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(quiz, form);
    });
    const question = element("p", "quiz-question-text");
    question.textContent = texts.text;
    node.append(title, question, form, element("div", "quiz-worked"), element("div", "quiz-spread"));
    anchor.after(node);
    return node;
  }

  function say(form, key, params = {}) {
    const sent = key === "quiz.sent";
    form.querySelector(".quiz-sent").textContent = sent ? t(key, params) : "";
    form.querySelector(".quiz-error").textContent = sent ? "" : t(key, params);
  }

  async function submit(quiz, form) {
    if (!current || current.id !== quiz.id || current.status !== "open") return;
    let value; // the option's index, or the number as typed (the server reads it as the lesson does)
    if (quiz.question.kind === "choice") {
      const picked = form.querySelector("input[name=quiz-choice]:checked");
      if (!picked) return say(form, "quiz.pick");
      value = Number(picked.value);
    } else {
      const input = form.querySelector(".quiz-input");
      value = input.value.trim();
      const readable = readNumber(value) !== null;
      input.setAttribute("aria-invalid", String(!readable));
      if (!readable) return say(form, "quiz.invalid"); // no request: the server would refuse it
    }
    let response;
    try {
      response = await fetch(
        `/api/sessions/${encodeURIComponent(code)}/quiz/${quiz.id}/answers/${studentId()}`,
        { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value }) },
      );
    } catch {
      return say(form, "quiz.error", { message: t("error.network") });
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 422) return say(form, quiz.question.kind === "choice" ? "quiz.pick" : "quiz.invalid");
    if (!response.ok) {
      const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
      return say(form, "quiz.error", { message: String(detail ?? response.statusText) });
    }
    answer = body.value;
    window.sessionStorage.setItem(ANSWER_KEY, JSON.stringify({ code, quiz: quiz.id, value: answer }));
    card.dataset.answered = "true";
    say(form, "quiz.sent", { value: answerText(quiz, answer) });
  }

  function reveal(quiz) {
    const form = card.querySelector(".quiz-form");
    for (const control of form.querySelectorAll("input, button")) control.disabled = true;
    form.querySelector(".quiz-sent").textContent = ""; // answers are closed: the verdict says it
    const spread = quiz.spread ?? [];
    const mine = answer === null ? undefined : spread.find(([value]) => value === answer);
    const verdict = element("p", "quiz-verdict");
    if (!mine) {
      verdict.textContent = t("quiz.no_answer");
      card.dataset.verdict = "none";
    } else {
      const right = mine[2] === 1; // checked by the server, as the lesson checks it
      verdict.textContent = t(right ? "quiz.right" : "quiz.wrong", { value: answerText(quiz, answer) });
      card.dataset.verdict = right ? "right" : "wrong";
    }
    const worked = card.querySelector(".quiz-worked");
    showWorked(worked, quiz);
    worked.prepend(verdict);
    const bars = barsOf(quiz.question.kind, spread, { options: textsOf(quiz).options, reveal: true });
    if (bars.length) drawSpread(card.querySelector(".quiz-spread"), bars, t("quiz.spread"));
  }

  return {
    show(quiz) {
      if (!quiz) {
        card?.remove();
        card = null;
        current = null;
        return;
      }
      if (!current || current.id !== quiz.id) {
        card?.remove();
        card = build(quiz);
        answer = savedAnswer(code, quiz.id);
        if (answer !== null) {
          const input = card.querySelector(".quiz-input");
          if (input) input.value = String(answer);
          const radio = card.querySelector(`input[name=quiz-choice][value="${answer}"]`);
          if (radio) radio.checked = true;
          card.dataset.answered = "true";
        }
        card.scrollIntoView({ block: "nearest" });
      } else if (current.status === quiz.status) {
        return; // the same question, re-sent with a page change
      }
      current = { id: quiz.id, status: quiz.status };
      card.dataset.quizId = String(quiz.id);
      card.dataset.status = quiz.status;
      if (quiz.status === "revealed") reveal(quiz);
    },
  };
}
