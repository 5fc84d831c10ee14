"""The lessons in one language: what `/api/lessons` answers and what the lesson pages render.

`of(...)` constructors shape an `app.lessons.Lesson` with a message catalogue (common + lessons,
in the reader's language), so the HTML page and the JSON API show the very same texts, numbers
and worked answers.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from pydantic import BaseModel

from app.lessons import LESSONS, Answer, ExplorerLink, Lesson, Question, fill

Messages = Mapping[str, str]
MAX_PARAGRAPHS = 12


def explorer_key(path: str) -> str:
    """/receptive-field → receptive_field: the explorer's name in catalogue keys."""
    return path.strip("/").replace("-", "_")


class ExplorerOut(BaseModel):
    path: str
    name: str  # the explorer's name in the reader's language
    label: str  # what this link shows there (a lesson's further links); else the name
    url: str  # the explorer page in the lesson's state
    embed_url: str  # the same, without the page chrome, for the lesson's frame
    available: bool  # False while that explorer page is not built yet

    @classmethod
    def of(
        cls, link: ExplorerLink, msgs: Messages, pages: Container[str], label_key: str = ""
    ) -> ExplorerOut:
        key = f"explorer.{explorer_key(link.path)}"
        name = msgs.get(key, key)
        return cls(
            path=link.path,
            name=name,
            label=msgs.get(label_key, name),
            url=link.url(),
            embed_url=link.url(embed="1"),
            available=link.path in pages,
        )


class AnswerOut(BaseModel):
    label: str
    label_text: str
    value: str
    exact: Any
    work: list[str]

    @classmethod
    def of(cls, answer: Answer, msgs: Messages) -> AnswerOut:
        key = f"lessons.answer.{answer.label}"
        return cls(
            label=answer.label,
            label_text=msgs.get(key, key),
            value=answer.value,
            exact=answer.exact,
            work=list(answer.work),
        )


class QuestionOut(BaseModel):
    id: str
    text: str
    why: str  # the idea behind the answer, shown with it
    params: dict[str, Any]
    answers: list[AnswerOut]

    @classmethod
    def of(cls, lesson: Lesson, question: Question, msgs: Messages) -> QuestionOut:
        key = f"lesson.{lesson.key}.q.{question.id}"
        return cls(
            id=question.id,
            text=fill(msgs.get(key, key), question.params),
            why=fill(msgs.get(f"{key}.why", ""), question.params),
            params=dict(question.params),
            answers=[AnswerOut.of(a, msgs) for a in question.answers()],
        )


class LessonRef(BaseModel):
    slug: str
    number: int  # 1-based place on the path
    title: str
    summary: str
    url: str

    @classmethod
    def of(cls, lesson: Lesson, msgs: Messages) -> LessonRef:
        return cls(
            slug=lesson.slug,
            number=LESSONS.index(lesson) + 1,
            title=msgs.get(f"lesson.{lesson.key}", lesson.slug),
            summary=msgs.get(f"lesson.{lesson.key}.summary", ""),
            url=f"/lessons/{lesson.slug}",
        )


class LessonSummaryOut(LessonRef):
    explorer: ExplorerOut
    questions: int

    @classmethod
    def of(cls, lesson: Lesson, msgs: Messages, pages: Container[str]) -> LessonSummaryOut:
        return cls(
            **LessonRef.of(lesson, msgs).model_dump(),
            explorer=ExplorerOut.of(lesson.explorer, msgs, pages),
            questions=len(lesson.questions),
        )


class LessonIndexOut(BaseModel):
    lang: str
    lessons: list[LessonSummaryOut]

    @classmethod
    def of(cls, lang: str, msgs: Messages, pages: Container[str]) -> LessonIndexOut:
        return cls(lang=lang, lessons=[LessonSummaryOut.of(x, msgs, pages) for x in LESSONS])


class LessonOut(LessonRef):
    lang: str
    count: int
    paragraphs: list[str]
    explorer: ExplorerOut
    more: list[ExplorerOut]
    questions: list[QuestionOut]
    previous: LessonRef | None
    next: LessonRef | None

    @classmethod
    def of(cls, lesson: Lesson, lang: str, msgs: Messages, pages: Container[str]) -> LessonOut:
        at = LESSONS.index(lesson)
        paragraphs = []
        for number in range(1, MAX_PARAGRAPHS + 1):
            text = msgs.get(f"lesson.{lesson.key}.p{number}")
            if text is None:
                break
            paragraphs.append(text)
        return cls(
            **LessonRef.of(lesson, msgs).model_dump(),
            lang=lang,
            count=len(LESSONS),
            paragraphs=paragraphs,
            explorer=ExplorerOut.of(lesson.explorer, msgs, pages),
            more=[
                ExplorerOut.of(link, msgs, pages, f"lesson.{lesson.key}.more{number}")
                for number, link in enumerate(lesson.more, 1)
            ],
            questions=[QuestionOut.of(lesson, q, msgs) for q in lesson.questions],
            previous=LessonRef.of(LESSONS[at - 1], msgs) if at > 0 else None,
            next=LessonRef.of(LESSONS[at + 1], msgs) if at + 1 < len(LESSONS) else None,
        )
