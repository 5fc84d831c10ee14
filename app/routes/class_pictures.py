"""A class builds a dataset together (app/class_pictures.py): the teacher links a dataset to the
class session; students send pictures into its queue; the teacher accepts or rejects each.

Who may do what: linking and accepting need the session's teacher token *and* the dataset's
owner token (accepting writes to the dataset); listing the queue and rejecting need the teacher
token; anyone with the class code may read the linked classes and send a picture (checked as a
dataset upload, 4xx naming the file) and read the outcomes of their own pictures (by the
random student id their page made). A student has no way to write to the dataset itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.class_pictures import ClassPictureError, ClassPictures, Submission, get_class_pictures
from app.datasets.service import DatasetError, Datasets, get_datasets
from app.deps import AppSettings
from app.limits import heavy_work
from app.quiz import STUDENT_ID
from app.quotas import wrong_code_guard
from app.routes.sessions import Hub, TeacherToken
from app.schemas.class_pictures import (
    ClassDatasetLink,
    ClassDatasetOut,
    ClassOut,
    ClassPictureForm,
    Decided,
    PendingOut,
    SubmissionOut,
)
from app.sessions_shared import ClassroomHub, SessionError
from app.sessions_shared import normalise_code as key
from app.uploads import picture_form_schema, read_picture_form, refusal
from cnncore.datasets.user_images import prepare_picture
from cnncore.errors import CNNCoreError

T = TypeVar("T")
router = APIRouter(prefix="/api/sessions/{code}", tags=["sessions"],
                   dependencies=[Depends(wrong_code_guard)])  # fmt: skip
Queues = Annotated[ClassPictures, Depends(get_class_pictures)]
Store = Annotated[Datasets, Depends(get_datasets)]
DatasetToken = Annotated[str | None, Header(alias="X-Dataset-Token", max_length=128)]
PictureId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,32}$")]
_PICTURE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": picture_form_schema(
        ClassPictureForm, ["image", "class_id", "student", "name"])}}}}  # fmt: skip


async def _call(owner: ClassroomHub | ClassPictures, method: Callable[..., T], *args: Any) -> T:
    """A method of the hub or the queues, in a thread for one that waits on its database."""
    if getattr(owner, "blocking", False):
        return await run_in_threadpool(method, *args)
    return method(*args)


async def _session(hub: ClassroomHub, method: Callable[..., T], *args: Any) -> T:
    """A hub method; its refusal as HTTP."""
    try:
        return await _call(hub, method, *args)
    except SessionError as exc:
        raise HTTPException(exc.status_code, detail=str(exc)) from exc


async def _teacher(hub: ClassroomHub, code: str, token: str) -> None:
    """The session's teacher token, checked by the hub (404 unknown code, 403 another token)."""
    await _session(hub, hub.tally, code, token)  # read-only: its check is the teacher's


def _raise(exc: ClassPictureError | DatasetError) -> NoReturn:
    if isinstance(exc, DatasetError):
        raise HTTPException(exc.status_code, detail=str(exc)) from exc
    raise refusal(exc.status_code, exc.field, str(exc), exc.kind, **exc.ctx) from exc


async def _linked(queues: ClassPictures, code: str) -> str:
    try:
        return await _call(queues, queues.dataset_of, key(code))
    except ClassPictureError as exc:
        _raise(exc)


def _out(code: str, submission: Submission) -> SubmissionOut:
    url = (f"/api/sessions/{code}/pictures/{submission.id}.png"
           if submission.status == "pending" else None)  # fmt: skip
    return SubmissionOut(id=submission.id, class_id=submission.class_id, status=submission.status,
                         url=url)  # fmt: skip


def _classes(datasets: Datasets, dataset_id: str, queues: ClassPictures) -> ClassDatasetOut:
    record = datasets.get(dataset_id)
    return ClassDatasetOut(dataset=record.id, name=record.name,
                           classes=[ClassOut(id=c.id, name=c.name) for c in record.classes],
                           per_student=queues.limits.per_student)  # fmt: skip


@router.put("/dataset", response_model=ClassDatasetOut)
async def link_dataset(code: str, body: ClassDatasetLink, token: TeacherToken, hub: Hub,
                       queues: Queues, datasets: Store,
                       dataset_token: DatasetToken = None) -> ClassDatasetOut:  # fmt: skip
    """The teacher opens their dataset to the class (needs both X-Teacher-Token and the
    dataset's X-Dataset-Token); another dataset linked before is let go, with its queue."""
    await _teacher(hub, code, token)
    if await _call(queues, queues.full):  # let go of sessions that ended (in memory, a
        for linked_code in await _call(queues, queues.codes):  # session's end does not say)
            try:
                await _session(hub, hub.view, linked_code)
            except HTTPException:
                await _call(queues, queues.unlink, linked_code)
    try:
        await run_in_threadpool(datasets.owned, body.dataset, dataset_token)
        await _call(queues, queues.link, key(code), body.dataset)
        return await run_in_threadpool(_classes, datasets, body.dataset, queues)
    except (ClassPictureError, DatasetError) as exc:
        _raise(exc)


@router.delete("/dataset", status_code=204, response_class=Response)
async def unlink_dataset(code: str, token: TeacherToken, hub: Hub, queues: Queues) -> Response:
    """The class stops sending pictures; what waits is dropped (needs X-Teacher-Token)."""
    await _teacher(hub, code, token)
    await _call(queues, queues.unlink, key(code))
    return Response(status_code=204)


@router.get("/dataset", response_model=ClassDatasetOut)
async def linked_dataset(code: str, hub: Hub, queues: Queues, datasets: Store) -> ClassDatasetOut:
    """The dataset the class sends pictures to and its classes (`dataset` null when none is
    open: the students' pages ask every few seconds, and a refusal would be an error there)."""
    await _session(hub, hub.view, code)
    dataset_id = await _call(queues, queues.linked, key(code))
    if dataset_id is None:
        return ClassDatasetOut(dataset=None, per_student=queues.limits.per_student)
    try:
        return await run_in_threadpool(_classes, datasets, dataset_id, queues)
    except DatasetError as exc:
        _raise(exc)


@router.post("/pictures", response_model=SubmissionOut, status_code=201,
             openapi_extra=_PICTURE_BODY,
             dependencies=[Depends(heavy_work("datasets"))])  # fmt: skip
async def send_picture(code: str, request: Request, hub: Hub, queues: Queues, datasets: Store,
                       settings: AppSettings) -> SubmissionOut:  # fmt: skip
    """A student's picture (multipart: `image`, `class_id`, `student`, `name`), checked and
    shrunk as a dataset upload is, into the queue until the teacher decides."""
    await _session(hub, hub.view, code)
    dataset_id = await _linked(queues, code)
    form, data = await read_picture_form(request, settings, ClassPictureForm)
    if data is None:
        raise refusal(422, "image", "send the picture in the 'image' part", "missing")
    record = await run_in_threadpool(datasets.get, dataset_id)
    if form.class_id not in {c.id for c in record.classes}:
        raise refusal(422, "class_id", "the dataset has no such class", "dataset_class_unknown")
    try:
        picture = await run_in_threadpool(prepare_picture, data, "picture", datasets.pictures)
    except CNNCoreError as exc:  # named as the dataset upload names it, in this form's part
        raise CNNCoreError(str(exc), "image", code=exc.code, ctx=exc.ctx) from exc
    try:
        made = await _call(queues, queues.submit, key(code), form.student, form.name.strip(),
                           form.class_id, picture)  # fmt: skip
    except ClassPictureError as exc:
        _raise(exc)
    return _out(key(code), made)


@router.get("/pictures", response_model=list[SubmissionOut])
async def my_pictures(code: str, queues: Queues, student: Annotated[
        str, Query(pattern=STUDENT_ID.pattern)]) -> list[SubmissionOut]:  # fmt: skip
    """The outcomes of one student's pictures (by the id their page made), oldest first; none
    while no dataset is open to the class."""
    try:
        return [_out(key(code), s) for s in await _call(queues, queues.mine, key(code), student)]
    except ClassPictureError:
        return []


@router.get("/pictures/pending", response_model=list[PendingOut])
async def pending_pictures(code: str, token: TeacherToken, hub: Hub,
                           queues: Queues) -> list[PendingOut]:  # fmt: skip
    """The pictures waiting for the teacher, oldest first (needs X-Teacher-Token)."""
    await _teacher(hub, code, token)
    try:
        waiting = await _call(queues, queues.pending, key(code))
    except ClassPictureError as exc:
        _raise(exc)
    return [PendingOut(**_out(key(code), s).model_dump(), name=s.name, width=s.width,
                       height=s.height) for s in waiting]  # fmt: skip


@router.get("/pictures/{picture}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})  # fmt: skip
async def picture_png(code: str, picture: PictureId, queues: Queues) -> Response:
    """A waiting picture (its id is the secret: only the sender and the teacher learn it)."""
    png = await _call(queues, queues.png, key(code), picture)
    if png is None:
        raise HTTPException(404, detail="no such picture waits")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.post("/pictures/{picture}/accept", response_model=Decided)
async def accept_picture(code: str, picture: PictureId, token: TeacherToken, hub: Hub,
                         queues: Queues, datasets: Store,
                         dataset_token: DatasetToken = None) -> Decided:  # fmt: skip
    """Into the dataset as a new version (a picture it holds already: `duplicate`); needs
    X-Teacher-Token and the dataset's X-Dataset-Token."""
    await _teacher(hub, code, token)
    try:
        dataset_id = await _linked(queues, code)
        await run_in_threadpool(datasets.owned, dataset_id, dataset_token)
        waiting = await _call(queues, queues.waiting, key(code), picture)
        record, added, _duplicates = await run_in_threadpool(
            datasets.add, dataset_id, [(waiting.class_id, "", waiting.picture)], "class"
        )
        decided = await _call(queues, queues.decide, key(code), picture,
                              "accepted" if added else "duplicate")  # fmt: skip
    except (ClassPictureError, DatasetError) as exc:
        _raise(exc)
    except KeyError as exc:  # the class was deleted meanwhile
        raise refusal(409, "class_id", "the dataset no longer has this class",
                      "dataset_class_unknown") from exc  # fmt: skip
    return Decided(picture=_out(key(code), decided), version=record.version,
                   images=record.images)  # fmt: skip


@router.post("/pictures/{picture}/reject", response_model=Decided)
async def reject_picture(code: str, picture: PictureId, token: TeacherToken, hub: Hub,
                         queues: Queues) -> Decided:  # fmt: skip
    """Not into the dataset; the student sees it was not taken (needs X-Teacher-Token)."""
    await _teacher(hub, code, token)
    try:
        await _call(queues, queues.waiting, key(code), picture)
        rejected = await _call(queues, queues.decide, key(code), picture, "rejected")
        return Decided(picture=_out(key(code), rejected))
    except ClassPictureError as exc:
        _raise(exc)
