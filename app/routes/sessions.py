"""Classroom follow mode: the teacher opens a session, publishes page state; followers stream it.

`/api/sessions...` is the API; `/join` and `/join/{code}` are the pages a student opens (the latter
redirects to the teacher's current page in follow mode: `<page>?follow=<code>`).
"""

import io
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from PIL import Image
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from app.deps import settings_dep
from app.join_address import LAN_COMMANDS, join_base
from app.quiz import STUDENT_ID, QuizRefused, quiz_question
from app.quotas import client_quota, follower_slot, note_wrong_code, wrong_code_guard
from app.routes.pages import render
from app.schemas.sessions import (
    QuizAnswer,
    QuizAnswered,
    QuizAsk,
    QuizAsked,
    QuizState,
    QuizTallyOut,
    SessionCreate,
    SessionCreated,
    SessionSnapshot,
    StatePublish,
    StatePublished,
)
from app.sessions import get_hub
from app.sessions_shared import ClassroomHub, QuizInvalid, SessionError, Subscription
from app.settings import Settings, get_settings
from app.sse import RECONNECT_MS, parse_last_event_id

T = TypeVar("T")
router = APIRouter()
# The raw body is cut off early (413) well above any state the hub would accept; the hub then
# measures the state itself exactly (413 naming `state`).
api = APIRouter(
    prefix="/api/sessions",
    tags=["sessions"],
    dependencies=[Depends(wrong_code_guard)],  # code guessing: 429 after many unknown codes
    max_body_size=2 * get_settings().max_session_state_bytes + 4096,
)

Hub = Annotated[ClassroomHub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]


async def _teacher_token(
    code: str, hub: Hub,
    token: Annotated[str | None, Header(alias="X-Teacher-Token", max_length=128)] = None,
) -> str:  # fmt: skip
    """Only the teacher who opened the session controls it, as runs: an unknown code is a 404
    first, then 401 without the token; a wrong token is the hub's 403."""
    if not token:
        await _hub(hub.view, code)
        raise HTTPException(401, detail="this needs the teacher token the session's creator was "
                                        "given (header X-Teacher-Token)")  # fmt: skip
    return token


TeacherToken = Annotated[str, Depends(_teacher_token)]
# Every route touching the hub is `async def`: the hub is plain asyncio state of the event loop's
# thread, and FastAPI would run a plain `def` route in its thread pool.


async def _run(method: Callable[..., T], *args: Any) -> T:
    """A hub method: on the event loop's thread for the in-memory hub (whose state is the
    loop's), in a thread for a hub that waits on its database."""
    if getattr(method.__self__, "blocking", False):
        return await run_in_threadpool(method, *args)
    return method(*args)


async def _hub(method: Callable[..., T], *args: Any) -> T:
    """`_run`, with the hub's refusal answered as HTTP (its status, naming the field)."""
    try:
        return await _run(method, *args)
    except SessionError as exc:
        _raise_http(exc)


def _raise_http(exc: SessionError) -> NoReturn:
    detail = (
        [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
        if exc.field
        else str(exc)
    )
    raise HTTPException(status_code=exc.status_code, detail=detail) from exc


def join_qr_svg(url: str) -> str:
    """The join URL as an inline SVG QR code (vector paths only: no raster, no inline style)."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=2,
        image_factory=qrcode.image.svg.SvgPathImage,
    )
    code.add_data(url)
    return code.make_image().to_string(encoding="unicode")


@api.post("", response_model=SessionCreated, status_code=201,
          dependencies=[Depends(client_quota("sessions"))])  # fmt: skip
async def create_session(
    body: SessionCreate, request: Request, hub: Hub, settings: SettingsDep
) -> SessionCreated:
    """Start a class session on the teacher's page; the token is shown to this caller only.
    The join link carries an address the students can reach (`app.join_address`)."""
    view, token = await _hub(hub.create, body.page, body.state)
    where = join_base(request.url.scheme, request.url.hostname or "", request.url.port,
                      settings.host)  # fmt: skip
    join_url = where.base + request.app.url_path_for("join_page", code=view.code)
    return SessionCreated(code=view.code, teacher_token=token, join_url=join_url,
                          qr_svg=join_qr_svg(join_url), reachable=where.reachable,
                          lan_commands=[] if where.reachable else list(LAN_COMMANDS))  # fmt: skip


@api.post("/{code}/state", response_model=StatePublished)
async def publish_state(
    code: str, body: StatePublish, token: TeacherToken, hub: Hub
) -> StatePublished:
    """The teacher's new page, state and step, sent to every follower."""
    event = await _hub(hub.publish, code, token, body.page, body.state, body.step)
    return StatePublished(event_id=event.event_id)


@api.get("/{code}", response_model=SessionSnapshot)
async def session_snapshot(code: str, hub: Hub) -> SessionSnapshot:
    """The latest snapshot and how many followers are connected."""
    view = await _hub(hub.view, code)
    # the latest event's page, state, step, event_id and quiz (its JSON, parsed once)
    return SessionSnapshot(**view.latest.payload, code=view.code, followers=view.followers)


@api.delete("/{code}", status_code=204)
async def end_session(code: str, token: TeacherToken, hub: Hub) -> Response:
    """The teacher ends the session; followers receive an `end` event."""
    await _hub(hub.end, code, token)
    return Response(status_code=204)


# --- the live class quiz (app/quiz.py) --------------------------------------------------------

StudentId = Annotated[str, Path(pattern=STUDENT_ID.pattern, description="made by the page")]


@api.post("/{code}/quiz", response_model=QuizAsked, status_code=201)
async def ask_quiz(code: str, body: QuizAsk, token: TeacherToken, hub: Hub) -> QuizAsked:
    """Put one of a lesson's questions to the class (replacing the one asked before)."""
    try:
        question = quiz_question(body.question)
    except QuizRefused as exc:
        _raise_http(QuizInvalid(exc))
    event = await _hub(hub.ask, code, token, question)
    return QuizAsked(quiz_id=event.quiz["id"], event_id=event.event_id)


@api.get("/{code}/quiz", response_model=QuizState)
async def quiz_tally(code: str, token: TeacherToken, hub: Hub) -> QuizState:
    """The teacher's view of the question asked: how the class has answered so far."""
    tally = await _hub(hub.tally, code, token)
    followers = (await _hub(hub.view, code)).followers
    return QuizState(quiz=QuizTallyOut(**vars(tally)) if tally else None, followers=followers)


@api.put("/{code}/quiz/{quiz_id}/answers/{student}", response_model=QuizAnswered)
async def answer_quiz(
    code: str, quiz_id: int, student: StudentId, body: QuizAnswer, hub: Hub
) -> QuizAnswered:
    """A student's answer; sent again, it replaces the earlier one (until the reveal). The
    answer is read as the lesson reads it; the reply says how (the number, or the option)."""
    value = await _hub(hub.answer, code, quiz_id, student, body.value)
    return QuizAnswered(value=value)


@api.post("/{code}/quiz/{quiz_id}/reveal", response_model=StatePublished)
async def reveal_quiz(code: str, quiz_id: int, token: TeacherToken, hub: Hub) -> StatePublished:
    """Close the answers; everyone sees the worked answer and the class's spread."""
    event = await _hub(hub.reveal, code, token, quiz_id)
    return StatePublished(event_id=event.event_id)


@api.delete("/{code}/quiz", response_model=StatePublished)
async def close_quiz(code: str, token: TeacherToken, hub: Hub) -> StatePublished:
    """Take the question away from the students' screens."""
    event = await _hub(hub.close_quiz, code, token)
    return StatePublished(event_id=event.event_id)


# --- the teacher's own picture (/features), shared with the class ------------------------------

PICTURE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _picture(data: bytes, limit: int) -> tuple[bytes, str]:
    """The picture as stored and its media type, read from its own bytes (not from the
    request's headers): PNG, JPEG or WebP within `limit` bytes; else 413 or 422 naming it."""
    if len(data) > limit:
        _raise_http(_PictureRefused(f"the picture is {len(data)} bytes; the limit is {limit}",
                                    413))  # fmt: skip
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except Exception as exc:  # PIL raises many kinds for bytes that are no picture
        _raise_http(_PictureRefused(f"not a picture PIL can read: {exc}", 422))
    if kind not in PICTURE_TYPES:
        _raise_http(_PictureRefused(f"a {kind} picture; send PNG, JPEG or WebP", 422))
    return data, PICTURE_TYPES[kind]


class _PictureRefused(SessionError):
    field = "picture"

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@api.put("/{code}/picture", response_model=StatePublished,
         max_body_size=get_settings().session_picture_bytes + 1024)  # fmt: skip
async def share_picture(code: str, request: Request, token: TeacherToken, hub: Hub,
                        settings: SettingsDep) -> StatePublished:  # fmt: skip
    """The teacher's own picture (the body: PNG, JPEG or WebP bytes), shared with the class:
    the session keeps one; snapshots name its version, followers' pages fetch it."""
    data, media_type = _picture(await request.body(), settings.session_picture_bytes)
    event = await _hub(hub.set_picture, code, token, data, media_type)
    return StatePublished(event_id=event.event_id)


@api.get("/{code}/picture", response_class=Response)
async def session_picture(code: str, hub: Hub) -> Response:
    """The teacher's shared picture (whoever has the class code may see it, as the page)."""
    picture = await _hub(hub.picture, code)
    return Response(picture.data, media_type=picture.media_type,
                    headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip


async def _follow_stream(subscription: Subscription):
    yield ServerSentEvent(retry=RECONNECT_MS, comment="following")
    async for event in subscription.events():
        yield event.frame  # encoded once per event, shared by every follower
    yield ServerSentEvent(event="end", data="{}")


@api.get("/{code}/events", dependencies=[Depends(client_quota("follows"))])
async def follow_events(
    code: str,
    request: Request,
    hub: Hub,
    settings: Annotated[Settings, Depends(settings_dep)],
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> EventSourceResponse:
    """Server-Sent Events: `state` events (full snapshots, with ids; `Last-Event-ID` replays
    what was missed) and a final `end` event."""
    give_back = follower_slot(request, settings)  # one of the client's slots, until it closes
    try:
        subscription = hub.subscribe(code, parse_last_event_id(last_event_id))
    except SessionError as exc:
        give_back()
        _raise_http(exc)
    # close() also as a background task: a follower that leaves before the stream's first
    # event never runs the generator's own cleanup.
    return EventSourceResponse(
        _follow_stream(subscription),
        ping=settings.session_ping_seconds,
        background=BackgroundTask(_close_follower, subscription, give_back),
    )


def _close_follower(subscription: Subscription, give_back) -> None:
    subscription.close()
    give_back()


@router.get("/join", response_class=HTMLResponse, include_in_schema=False)
def join_form(request: Request, code: Annotated[str | None, Query(max_length=16)] = None):
    """Where a student types the code; a submitted code goes on to `/join/{code}`."""
    if code and code.strip():
        return RedirectResponse(request.url_for("join_page", code=code.strip()), status_code=303)
    return render(request, "join.html", "join", code="", unknown=False)


@router.get("/join/{code}", response_class=HTMLResponse, include_in_schema=False, name="join_page",
            dependencies=[Depends(wrong_code_guard)])  # fmt: skip
async def join_page(code: str, request: Request, hub: Hub):
    """Open the teacher's current page in follow mode, or say that the code is unknown."""
    try:
        session = await _run(hub.view, code)
    except SessionError:
        note_wrong_code(request)
        response = render(request, "join.html", "join", code=code[:16], unknown=True)
        response.status_code = 404
        return response
    parts = urlsplit(session.latest.page)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "follow"]
    query.append(("follow", session.code))
    target = urlunsplit(("", "", parts.path, urlencode(query), ""))
    return RedirectResponse(target, status_code=303)


router.include_router(api)
