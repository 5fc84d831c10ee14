"""A live class quiz: one of the lessons' questions put to everyone following a class session.

The teacher names a question (`<lesson slug>.<question id>`, as `/api/questions` lists them);
what the students give and how it is checked is the question's own `Check`
(`app/lesson_answers/check.py`): a number within its tolerance, or one of its options. Students
answer on their own devices; the teacher sees the spread of the answers and then reveals the
worked answer to everyone. The question's texts in both languages and its worked answer are built
here once, as JSON bytes, so a hub only stores and forwards them.

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
from functools import lru_cache
from typing import Any

from app.lesson_answers.check import parse_number
from app.lessons import Question, question_by_ref
from app.schemas.lessons import QuizQuestionOut

__all__ = ["QuizQuestion", "QuizRefused", "count_answers", "quiz_question", "valid_answer"]

# A student id is made by the student's page (random, kept for the tab): letters and digits only.
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_ANSWER = 1e15  # a number beyond any answer of the lessons: refused, not stored


class QuizRefused(ValueError):
    """A quiz request that names no askable question, or an answer that does not fit it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class QuizQuestion:
    """What the class is asked (`public`: JSON bytes for every follower) and what the teacher
    reveals (`worked`: JSON bytes), with the question to check answers against. A choice is
    stored as its option's index."""

    ref: str
    kind: str  # "number" or "choice"
    options: tuple[str, ...]  # option ids (choices)
    question: Question
    public: bytes
    worked: bytes

    def is_correct(self, value: float | int) -> bool:
        given = self.options[int(value)] if self.kind == "choice" else value
        return self.question.is_correct(given)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@lru_cache(maxsize=1024)  # the lessons never change: each question is built once
def quiz_question(ref: str) -> QuizQuestion:
    """The question `ref` (`<lesson>.<question>`) ready to ask, with its texts in both
    languages; `QuizRefused` naming the field when there is no such question."""
    found = question_by_ref(ref)
    if found is None:
        raise QuizRefused(f"no lesson question is called {ref!r}; GET /api/questions lists "
                          "them", "question")  # fmt: skip
    lesson, question = found
    out = QuizQuestionOut.of(lesson, question)
    texts = {
        lang: {"text": q.text, "ask": q.check.ask, "options": [o.text for o in q.check.options]}
        for lang, q in out.text.items()
    }
    public = {"id": out.id, "kind": out.kind, "percent": out.percent, "texts": texts}
    worked = {
        "expected": out.expected,
        "answer": out.option_ids.index(out.expected) if out.kind == "choice" else out.expected,
        "parts": {lang: [{"label": a.label_text, "value": a.value, "work": a.work}
                         for a in q.answers] for lang, q in out.text.items()},
        "why": {lang: q.why for lang, q in out.text.items()},
    }  # fmt: skip
    return QuizQuestion(out.id, out.kind, tuple(out.option_ids), question, _json(public),
                        _json(worked))  # fmt: skip


def valid_answer(question: QuizQuestion, value: Any) -> float | int:
    """The answer as stored: a finite number, or the chosen option's index (the student sends
    the option's id or its index); else `QuizRefused` naming `value`."""
    if question.kind == "choice":
        if isinstance(value, str) and value in question.options:
            return question.options.index(value)
        in_range = isinstance(value, int) and 0 <= value < len(question.options)
        if in_range and not isinstance(value, bool):
            return value
        raise QuizRefused(f"pick one of {', '.join(question.options)}", "value")
    if isinstance(value, str):  # as typed: 61,706 · 0.417 · 5.6×10^-5 · 1/4 (check.py)
        value = parse_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QuizRefused("an answer is a number, such as 324, 0.417 or 1/4", "value")
    if not math.isfinite(value) or abs(value) > MAX_ANSWER:
        raise QuizRefused(f"an answer is a finite number of at most {MAX_ANSWER:g}", "value")
    return int(value) if float(value).is_integer() else float(value)


def count_answers(question: QuizQuestion, values: Iterable[float | int]) -> list[list]:
    """The spread: `[value, count, right]` in increasing value (numbers), or one per option
    (choices, `[index, count, right]` for every index), `right` 1 for the right answer."""
    counts = Counter(values)
    if question.kind == "choice":
        keys: Iterable[float | int] = range(len(question.options))
    else:
        keys = sorted(counts)
    return [[key, counts.get(key, 0), int(question.is_correct(key))] for key in keys]
