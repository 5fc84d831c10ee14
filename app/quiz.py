"""A live class quiz: one of a lesson's questions put to everyone following a class session.

The teacher names a lesson, one of its questions and one part of that question's worked answer
(`app.lessons`); the part must be a single number (or, for a question that offers choices, a
choice). Students answer on their own devices; the teacher sees the spread of the answers and
then reveals the worked answer to everyone. The question, its texts in both languages and the
worked answer are built here once, as JSON bytes, so a hub only stores and forwards them.

Answers stay inside the session (the hub's memory, or its PostgreSQL tables with several workers):
one per student id, changeable until the reveal, at most `max_quiz_answers` per question.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.i18n import LANGUAGES, messages
from app.lessons import fill, lesson_by_slug

__all__ = ["QuizQuestion", "count_answers", "is_correct", "quiz_question", "valid_answer"]

# A student id is made by the student's page (random, kept for the tab): letters and digits only.
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
RELATIVE_TOLERANCE = 5e-4  # the lessons show 4 significant digits: 0.4170 is right for 0.41703
MAX_ANSWER = 1e15  # a number beyond any answer of the lessons: refused, not stored


class QuizRefused(ValueError):
    """A quiz request that names no askable question, or an answer that does not fit it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class QuizQuestion:
    """What the class is asked (`public`: JSON bytes for every follower) and what the teacher
    reveals (`worked`: JSON bytes), with the machine answer to check against."""

    kind: str  # "number" or "choice"
    options: int  # number of choices (0 for a number)
    exact: float | int  # the number, or the index of the right choice
    public: bytes
    worked: bytes


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def quiz_question(lesson_slug: str, question_id: str, part: str) -> QuizQuestion:
    """The part `part` of question `question_id` of lesson `lesson_slug`, ready to ask, with its
    texts in both languages; `QuizRefused` naming the field when it cannot be asked."""
    lesson = lesson_by_slug(lesson_slug)
    if lesson is None:
        raise QuizRefused(f"no lesson is called {lesson_slug!r}", "lesson")
    question = next((q for q in lesson.questions if q.id == question_id), None)
    if question is None:
        raise QuizRefused(f"lesson {lesson_slug!r} has no question {question_id!r}", "question")
    answer = next((a for a in question.answers() if a.label == part), None)
    if answer is None:
        raise QuizRefused(f"question {question_id!r} has no answer part {part!r}", "part")
    choices = tuple(getattr(answer, "choices", ()) or ())  # catalogue keys, when it offers any
    if choices:
        kind, exact = "choice", int(answer.exact)
    elif isinstance(answer.exact, (int, float)) and not isinstance(answer.exact, bool):
        kind, exact = "number", answer.exact
    else:
        raise QuizRefused(f"the answer part {part!r} is not a single number or a choice; "
                          "ask one that is", "part")  # fmt: skip
    key = f"lesson.{lesson.key}.q.{question.id}"
    texts: dict[str, dict[str, Any]] = {}
    for lang in LANGUAGES:
        msgs = messages(lang, "lessons")
        label = f"lessons.answer.{answer.label}"
        texts[lang] = {
            "text": fill(msgs.get(key, key), question.params),
            "label": msgs.get(label, label),
            "options": [msgs.get(choice, choice) for choice in choices],
            "why": fill(msgs.get(f"{key}.why", ""), question.params),
        }
    public = {
        "lesson": lesson.slug, "question": question.id, "part": answer.label, "kind": kind,
        "texts": {lang: {k: v for k, v in text.items() if k != "why"}
                  for lang, text in texts.items()},
    }  # fmt: skip
    worked = {
        "value": answer.value, "exact": exact, "work": list(answer.work),
        "why": {lang: text["why"] for lang, text in texts.items()},
    }  # fmt: skip
    return QuizQuestion(kind, len(choices), exact, _json(public), _json(worked))


def valid_answer(question: QuizQuestion, value: Any) -> float | int:
    """The answer as stored: a finite number, or a choice index in range; else `QuizRefused`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QuizRefused("an answer is a number", "value")
    if question.kind == "choice":
        if not (isinstance(value, int) and 0 <= value < question.options):
            raise QuizRefused(f"a choice is 0 to {question.options - 1}", "value")
        return value
    if not math.isfinite(value) or abs(value) > MAX_ANSWER:
        raise QuizRefused(f"an answer is a finite number of at most {MAX_ANSWER:g}", "value")
    return int(value) if float(value).is_integer() else float(value)


def is_correct(question: QuizQuestion, value: float | int) -> bool:
    """Right when equal to the worked answer within the precision the lessons show it with."""
    if question.kind == "choice":
        return value == question.exact
    return math.isclose(value, question.exact, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def count_answers(question: QuizQuestion, values: Iterable[float | int]) -> list[list]:
    """The spread: `[value, count]` pairs in increasing value (numbers), or one count per
    choice, as `[index, count]` for every index."""
    counts = Counter(values)
    if question.kind == "choice":
        return [[index, counts.get(index, 0)] for index in range(question.options)]
    return [[value, count] for value, count in sorted(counts.items())]
