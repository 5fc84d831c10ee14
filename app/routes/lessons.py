"""The lesson path: pages `/lessons` and `/lessons/{slug}`, and the same lessons as JSON.

A slug is looked up in the lesson table (`app.lessons`), never used as a path; an unknown one is
a 404 (a page for people, JSON for the API). Answers are computed by cnncore on first request.
"""

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from app.i18n import choose_language, messages
from app.lessons import LESSONS, fill, lesson_by_slug, question_by_ref
from app.routes.pages import PAGES, render
from app.schemas.lessons import (
    AnswerCheckOut,
    AnswerIn,
    LessonIndexOut,
    LessonOut,
    QuizQuestionOut,
)

router = APIRouter(tags=["lessons"])
CATALOGUE = "lessons"


def _messages(request: Request) -> tuple[str, dict[str, str]]:
    lang = choose_language(request)
    return lang, messages(lang, CATALOGUE)


def _for_browser(msgs: dict[str, str]) -> dict[str, str]:
    """The catalogue the page embeds for its scripts: UI strings and titles, not the lesson texts
    (the server has rendered those), so a lesson page does not carry every other lesson."""
    return {
        key: text
        for key, text in msgs.items()
        if not (key.startswith("lesson.") and key.count(".") >= 2)
    }


def _page(request: Request, template: str, msgs: dict[str, str], **context) -> HTMLResponse:
    return render(
        request,
        f"lessons/{template}.html",
        CATALOGUE,
        fill=fill,
        messages=_for_browser(msgs),
        **context,
    )


@router.get("/lessons", response_class=HTMLResponse, include_in_schema=False)
def lessons_page(request: Request) -> HTMLResponse:
    lang, msgs = _messages(request)
    return _page(request, "index", msgs, index=LessonIndexOut.of(lang, msgs, PAGES), missing=False)


@router.get("/lessons/{slug}", response_class=HTMLResponse, include_in_schema=False)
def lesson_page(request: Request, slug: str) -> HTMLResponse:
    lang, msgs = _messages(request)
    lesson = lesson_by_slug(slug)
    if lesson is None:
        response = _page(
            request, "index", msgs, index=LessonIndexOut.of(lang, msgs, PAGES), missing=True
        )
        response.status_code = 404
        return response
    return _page(request, "lesson", msgs, view=LessonOut.of(lesson, lang, msgs, PAGES))


@router.get("/api/lessons", response_model=LessonIndexOut)
def lessons_api(request: Request) -> LessonIndexOut:
    """Every lesson in order: title, summary, explorer and number of questions (`?lang=ko|en`)."""
    lang, msgs = _messages(request)
    return LessonIndexOut.of(lang, msgs, PAGES)


@router.get("/api/lessons/{slug}", response_model=LessonOut)
def lesson_api(request: Request, slug: str) -> LessonOut:
    """One lesson: texts, its explorer's preset URL, and questions with computed worked answers."""
    lesson = lesson_by_slug(slug)
    if lesson is None:
        raise HTTPException(status_code=404, detail="no such lesson; GET /api/lessons lists them")
    lang, msgs = _messages(request)
    return LessonOut.of(lesson, lang, msgs, PAGES)


_NO_QUESTION = "no such question; GET /api/questions lists them (ids are <lesson>.<question>)"


@router.get("/api/questions", response_model=list[QuizQuestionOut])
def questions_api() -> list[QuizQuestionOut]:
    """Every lesson question in both languages, with its check and computed worked answer."""
    return [QuizQuestionOut.of(lesson, q) for lesson in LESSONS for q in lesson.questions]


@router.get("/api/questions/{ref}", response_model=QuizQuestionOut)
def question_api(ref: str) -> QuizQuestionOut:
    """One question by id (`convolution.dot`), in both languages."""
    found = question_by_ref(ref)
    if found is None:
        raise HTTPException(status_code=404, detail=_NO_QUESTION)
    return QuizQuestionOut.of(*found)


@router.post("/api/questions/{ref}/check", response_model=AnswerCheckOut)
def check_answer(ref: str, body: AnswerIn) -> AnswerCheckOut:
    """Whether a typed number (within the question's tolerance) or a chosen option is right."""
    found = question_by_ref(ref)
    if found is None:
        raise HTTPException(status_code=404, detail=_NO_QUESTION)
    return AnswerCheckOut.of(found[1], body.answer)
