// The worked answer of a class-quiz question, as the teacher's panel and every student's card show
// it after the reveal: the answer asked for, then each part of the lesson's worked answer with its
// formula lines, then the idea behind it, in the reader's language.

import { formatExact } from "../format.js";
import { language, t } from "../i18n.js";

function line(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** The question's texts in the page's language. */
export function textsOf(quiz) {
  return quiz.question.texts[language()] ?? quiz.question.texts.en;
}

/** An answer as the class sees it: an option's text, or the number (with % for a share). */
export function answerText(quiz, value) {
  if (quiz.question.kind === "choice") return textsOf(quiz).options[value] ?? String(value);
  return `${formatExact(value)}${quiz.question.percent ? "%" : ""}`;
}

/** Fill `container` with the worked answer of a revealed `quiz`. */
export function showWorked(container, quiz) {
  const { worked } = quiz;
  const texts = textsOf(quiz);
  container.replaceChildren(
    line("p", "quiz-worked-value", quiz.question.kind === "choice"
      ? t("quiz.answer_choice", { value: answerText(quiz, worked.answer) })
      : t("quiz.answer_is", { label: texts.ask, value: answerText(quiz, worked.answer) })),
  );
  for (const part of worked.parts[language()] ?? worked.parts.en) {
    container.append(line("p", "quiz-worked-part", `${part.label}: ${part.value}`));
    for (const work of part.work) container.append(line("code", "work-line", work));
  }
  const why = worked.why?.[language()];
  if (why) container.append(line("p", "why", why));
}
