"""The lessons in one language: what `/api/lessons` answers and what the lesson pages render.

`of(...)` constructors shape an `app.lessons.Lesson` with a message catalogue (common + lessons,
in the reader's language), so the HTML page and the JSON API show the very same texts, numbers
and worked answers.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictFloat

from app.i18n import LANGUAGES, messages
from app.lesson_answers.check import MAX_ANSWER_CHARS, parse_number
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


class OptionOut(BaseModel):
    id: str  # what a student sends to choose it
    text: str


class CheckOut(BaseModel):
    """What the student answers: a typed number or one of the options, and the expected one."""

    kind: str  # "number" | "choice"
    ask: str  # the input's label: the part of the answer asked, or the choice's question
    tolerance: float  # number: relative tolerance, 0 = exact
    percent: bool  # number: typed in percent
    options: list[OptionOut]  # choice: in the order shown
    expected: float | int | str  # number to type, or the right option's id

    @classmethod
    def of(cls, lesson: Lesson, question: Question, msgs: Messages) -> CheckOut:
        check, key = question.check, f"lesson.{lesson.key}.q.{question.id}"
        if check.kind == "choice":
            ask = msgs.get(f"{key}.choice", key)
        else:
            ask = msgs.get(f"lessons.answer.{check.label}", check.label)
            if check.part:
                ask += f" · {msgs.get(f'lessons.part.{check.part}', check.part)}"
        return cls(
            kind=check.kind,
            ask=ask,
            tolerance=check.tolerance,
            percent=check.percent,
            options=[
                OptionOut(id=option, text=msgs.get(f"{key}.option.{option}", option))
                for option in check.options
            ],
            expected=question.expected(),
        )


class QuestionOut(BaseModel):
    id: str
    text: str
    why: str  # the idea behind the answer, shown with it
    params: dict[str, Any]
    answers: list[AnswerOut]
    check: CheckOut

    @classmethod
    def of(cls, lesson: Lesson, question: Question, msgs: Messages) -> QuestionOut:
        key = f"lesson.{lesson.key}.q.{question.id}"
        return cls(
            id=question.id,
            text=fill(msgs.get(key, key), question.params),
            why=fill(msgs.get(f"{key}.why", ""), question.params),
            params=dict(question.params),
            answers=[AnswerOut.of(a, msgs) for a in question.answers()],
            check=CheckOut.of(lesson, question, msgs),
        )


class QuizQuestionOut(BaseModel):
    """One lesson question in every language, for a class quiz: `id` is `<lesson>.<question>`;
    `kind`, `tolerance`, `percent`, `expected` and the option ids are the same in every language;
    `text[lang]` is the question with its check and worked answer in that language."""

    id: str
    lesson: str
    question: str
    kind: str
    tolerance: float
    percent: bool
    expected: float | int | str
    option_ids: list[str]
    text: dict[str, QuestionOut]

    @classmethod
    def of(cls, lesson: Lesson, question: Question) -> QuizQuestionOut:
        check = question.check
        return cls(
            id=f"{lesson.slug}.{question.id}",
            lesson=lesson.slug,
            question=question.id,
            kind=check.kind,
            tolerance=check.tolerance,
            percent=check.percent,
            expected=question.expected(),
            option_ids=list(check.options),
            text={
                lang: QuestionOut.of(lesson, question, messages(lang, "lessons"))
                for lang in LANGUAGES
            },
        )


class AnswerIn(BaseModel):
    """A student's answer: a number (or the text typed, e.g. "61,706") or an option's id."""

    answer: StrictFloat | Annotated[str, Field(max_length=MAX_ANSWER_CHARS)]


class AnswerCheckOut(BaseModel):
    correct: bool
    understood: bool  # False: not a number (number questions) or no such option (choices)

    @classmethod
    def of(cls, question: Question, given: float | str) -> AnswerCheckOut:
        check = question.check
        if check.kind == "choice":
            understood = given in check.options
        else:
            understood = parse_number(given) is not None
        return cls(correct=understood and question.is_correct(given), understood=understood)


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
