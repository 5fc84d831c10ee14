"""A student's own datasets: create one (its owner token is answered once), name its classes,
add pictures (files, drawings, webcam frames or a zip of class folders), browse, move and
delete them. The work happens in `app.datasets` (rows, files, limits) and
`cnncore.datasets.user_images` (each picture checked, shrunk and content-addressed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.datasets.files import DATASET_ID_PATTERN
from app.datasets.service import DatasetError, Datasets, get_datasets
from app.datasets.store import DatasetRecord, DatasetStore
from app.deps import AppSettings
from app.limits import client_address, heavy_work
from app.owner_tokens import token_header
from app.runs.manager import RunManager, get_run_manager
from app.runs.store import ACTIVE_STATUSES
from app.schemas.datasets import (
    ClassIn,
    DatasetCreate,
    DatasetCreated,
    DatasetOut,
    DatasetRename,
    ImageMove,
    ImageOut,
    PicturesAdded,
    PicturesForm,
    added_out,
    dataset_out,
    image_out,
)
from app.settings import Settings
from app.uploads import FORM_OVERHEAD, refusal
from cnncore.datasets.user_images import DIGEST_PATTERN, prepare_picture

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

Store = Annotated[Datasets, Depends(get_datasets)]
DatasetId = Annotated[str, Path(pattern=DATASET_ID_PATTERN)]
Digest = Annotated[str, Path(pattern=DIGEST_PATTERN)]
ClassId = Annotated[int, Path(ge=0, le=1_000_000)]
Token = token_header("X-Dataset-Token")
PICTURE_PART = {"type": "string", "format": "binary"}


def _raise(exc: DatasetError | KeyError) -> NoReturn:
    if isinstance(exc, KeyError):
        raise HTTPException(404, detail="no such dataset or picture") from exc
    raise HTTPException(exc.status_code, detail=str(exc)) from exc


def _limits(datasets: Datasets) -> dict[str, int]:
    limits = datasets.limits
    return {"images": limits.max_images, "classes": limits.max_classes,
            "bytes": limits.max_bytes, "pixels": limits.max_pixels}  # fmt: skip


def _owned(datasets: Datasets, dataset_id: str, token: str | None) -> None:
    try:
        datasets.owned(dataset_id, token)
    except DatasetError as exc:
        _raise(exc)


def _out(datasets: Datasets, record) -> DatasetOut:
    return dataset_out(record, _limits(datasets))


Removal = tuple[DatasetRecord, list[str]]  # the dataset after a change, the pictures it removed


def _remove(datasets: Datasets, dataset_id: str, token: str | None,
            change: Callable[[DatasetStore], Removal]) -> DatasetOut:  # fmt: skip
    """Check the owner, apply one change to the store, delete the files of the pictures it
    removed, answer the dataset as it is now."""
    _owned(datasets, dataset_id, token)
    try:
        record, gone = change(datasets.store)
    except KeyError as exc:
        _raise(exc)
    datasets.files.remove(dataset_id, gone)
    return _out(datasets, record)


def _change(datasets: Datasets, dataset_id: str, token: str | None,
            change: Callable[[DatasetStore], DatasetRecord]) -> DatasetOut:  # fmt: skip
    """`_remove` for a change that removes no picture."""
    return _remove(datasets, dataset_id, token, lambda store: (change(store), []))


@router.post("", response_model=DatasetCreated, status_code=201)
def create_dataset(body: DatasetCreate, request: Request, datasets: Store,
                   token: Token = None) -> DatasetCreated:  # fmt: skip
    """A new dataset with these classes; the answer carries its owner token (shown once, or
    the X-Dataset-Token sent when that token already owns a dataset: one browser's)."""
    if len(set(body.classes)) != len(body.classes):
        detail = [{"loc": ["body", "classes"], "msg": "each class needs its own name",
                   "type": "dataset_class_exists"}]  # fmt: skip
        raise HTTPException(422, detail=detail)
    record, token = datasets.create(body.name, body.classes, client_address(request), token)
    return DatasetCreated(id=record.id, owner_token=token, dataset=_out(datasets, record))


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: DatasetId, datasets: Store) -> DatasetOut:
    """A dataset: its classes with their picture counts, totals, version and limits."""
    try:
        return _out(datasets, datasets.get(dataset_id))
    except DatasetError as exc:
        _raise(exc)


@router.patch("/{dataset_id}", response_model=DatasetOut)
def rename_dataset(dataset_id: DatasetId, body: DatasetRename, datasets: Store,
                   token: Token = None) -> DatasetOut:  # fmt: skip
    """Rename (needs X-Dataset-Token)."""
    return _change(datasets, dataset_id, token, lambda store: store.rename(dataset_id, body.name))


def _used_by_active_run(manager: RunManager, dataset_id: str) -> str | None:
    for run in manager.store.list_runs(10_000, statuses=ACTIVE_STATUSES):
        if (run.config.get("data") or {}).get("dataset") == dataset_id:
            return run.id
    return None


@router.delete("/{dataset_id}", status_code=204, response_class=Response)
def delete_dataset(dataset_id: DatasetId, datasets: Store,
                   manager: Annotated[RunManager, Depends(get_run_manager)],
                   token: Token = None) -> Response:  # fmt: skip
    """Delete it with its pictures (needs X-Dataset-Token); 409 while a run trains on it."""
    _owned(datasets, dataset_id, token)
    run_id = _used_by_active_run(manager, dataset_id)
    if run_id is not None:
        # typed, so that the pages say it in their language (error.type.dataset_in_use)
        raise HTTPException(409, detail=[{
            "loc": ["path", "dataset_id"], "type": "dataset_in_use",
            "msg": f"run {run_id} is training on this dataset; stop it or wait for it to end, "
                   "then delete",
        }])  # fmt: skip
    datasets.delete(dataset_id)
    return Response(status_code=204)


@router.post("/{dataset_id}/classes", response_model=DatasetOut, status_code=201)
def add_class(dataset_id: DatasetId, body: ClassIn, datasets: Store,
              token: Token = None) -> DatasetOut:  # fmt: skip
    """A new, empty class (needs X-Dataset-Token)."""
    return _change(
        datasets,
        dataset_id,
        token,
        lambda store: store.add_class(dataset_id, body.name, datasets.limits),
    )


@router.patch("/{dataset_id}/classes/{class_id}", response_model=DatasetOut)
def rename_class(dataset_id: DatasetId, class_id: ClassId, body: ClassIn, datasets: Store,
                 token: Token = None) -> DatasetOut:  # fmt: skip
    """Rename a class (needs X-Dataset-Token)."""
    return _change(datasets, dataset_id, token,
                   lambda store: store.rename_class(dataset_id, class_id, body.name))  # fmt: skip


@router.delete("/{dataset_id}/classes/{class_id}", response_model=DatasetOut)
def delete_class(dataset_id: DatasetId, class_id: ClassId, datasets: Store,
                 token: Token = None) -> DatasetOut:  # fmt: skip
    """Delete a class and its pictures (needs X-Dataset-Token)."""
    return _remove(datasets, dataset_id, token,
                   lambda store: store.delete_class(dataset_id, class_id))  # fmt: skip


async def _read_parts(
    request: Request, settings: Settings, part: str, max_files: int
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """A bounded multipart body: its text fields and (file name, bytes) of its `part` files."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise refusal(411, part, "send the upload with a Content-Length header", "length_required")
    limit = settings.dataset_upload_bytes
    if int(declared) > limit + FORM_OVERHEAD:
        raise refusal(413, part, f"the upload is over {limit:,} bytes", "too_large", limit=limit)
    async with request.form(max_files=max_files, max_fields=8) as form:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        files = []
        for key, value in form.multi_items():
            if key == part and isinstance(value, UploadFile):
                files.append((value.filename or f"{part} {len(files) + 1}",
                              await value.read(limit + 1)))  # fmt: skip
    if not files:
        raise refusal(422, part, f"send at least one file in the {part!r} part", "missing")
    return fields, files


def _form(fields: dict[str, str]) -> PicturesForm:
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    try:
        return PicturesForm.model_validate({k: v for k, v in fields.items()})
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *map(str, e["loc"]))} for e in exc.errors(include_url=False)]
        ) from exc


async def _added(datasets: Datasets, add: Callable[[], tuple]) -> PicturesAdded:
    """Run `add` (the pictures' checks and writes) in a thread; answer what it added."""
    try:
        record, added, duplicates = await run_in_threadpool(add)
    except KeyError as exc:
        _raise(exc)
    return PicturesAdded(dataset=_out(datasets, record), added=[added_out(i) for i in added],
                         duplicates=[added_out(i, held) for i, held in duplicates])  # fmt: skip


_PICTURES_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["files", "class_id"],
        "properties": {"files": {"type": "array", "items": PICTURE_PART},
                       **PicturesForm.model_json_schema()["properties"]}}}}}}  # fmt: skip
_ARCHIVE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["archive"],
                                       "properties": {"archive": PICTURE_PART}}}}}}  # fmt: skip


@router.post(
    "/{dataset_id}/images",
    response_model=PicturesAdded,
    status_code=201,
    openapi_extra=_PICTURES_BODY,
    dependencies=[Depends(heavy_work("datasets"))],
)
async def add_pictures(dataset_id: DatasetId, request: Request, datasets: Store,
                       settings: AppSettings, token: Token = None) -> PicturesAdded:  # fmt: skip
    """Pictures into one class (multipart: `files`, `class_id`, `source`), all or none: a bad
    file refuses the upload naming it; pictures the dataset holds already are listed as
    duplicates, not added again. Needs X-Dataset-Token."""
    await run_in_threadpool(_owned, datasets, dataset_id, token)
    fields, files = await _read_parts(request, settings, "files", settings.dataset_upload_files)
    form = _form(fields)

    def work() -> tuple:
        pictures = [prepare_picture(raw, name, datasets.pictures) for name, raw in files]
        return datasets.add(dataset_id, [(form.class_id, "", p) for p in pictures], form.source)

    return await _added(datasets, work)


@router.post(
    "/{dataset_id}/archive",
    response_model=PicturesAdded,
    status_code=201,
    openapi_extra=_ARCHIVE_BODY,
    dependencies=[Depends(heavy_work("datasets"))],
)
async def add_archive(dataset_id: DatasetId, request: Request, datasets: Store,
                      settings: AppSettings, token: Token = None) -> PicturesAdded:  # fmt: skip
    """A zip of class folders (`cats/1.png`): each folder into the class of its name, made when
    missing; the archive is checked whole first and refused whole. Needs X-Dataset-Token."""
    await run_in_threadpool(_owned, datasets, dataset_id, token)
    _, files = await _read_parts(request, settings, "archive", 1)
    return await _added(datasets, lambda: datasets.add_archive(dataset_id, files[0][1]))


@router.get("/{dataset_id}/images", response_model=list[ImageOut])
def list_pictures(dataset_id: DatasetId, datasets: Store,
                  class_id: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
                  ) -> list[ImageOut]:  # fmt: skip
    """The pictures (all, or one class's), oldest first, with their URLs."""
    try:
        datasets.get(dataset_id)
    except DatasetError as exc:
        _raise(exc)
    return [image_out(dataset_id, i) for i in datasets.store.images(dataset_id, class_id)]


@router.get("/{dataset_id}/images/{digest}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})  # fmt: skip
def picture_png(dataset_id: DatasetId, digest: Digest, datasets: Store) -> Response:
    """One kept picture (PNG, its longer side at most the dataset_image_side setting)."""
    path = datasets.files.picture(dataset_id, digest)
    if not path.is_file():
        raise HTTPException(404, detail="no such picture")
    # The name is the pixels' digest: the file never changes, caches may keep it.
    return Response(path.read_bytes(), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})  # fmt: skip


@router.delete("/{dataset_id}/images/{digest}", response_model=DatasetOut)
def delete_picture(dataset_id: DatasetId, digest: Digest, datasets: Store,
                   token: Token = None) -> DatasetOut:  # fmt: skip
    """Delete one picture (needs X-Dataset-Token)."""
    return _remove(datasets, dataset_id, token,
                   lambda store: (store.delete_image(dataset_id, digest), [digest]))  # fmt: skip


@router.patch("/{dataset_id}/images/{digest}", response_model=DatasetOut)
def move_picture(dataset_id: DatasetId, digest: Digest, body: ImageMove, datasets: Store,
                 token: Token = None) -> DatasetOut:  # fmt: skip
    """Move one picture to another class (needs X-Dataset-Token)."""
    return _change(datasets, dataset_id, token,
                   lambda store: store.move_image(dataset_id, digest, body.class_id))  # fmt: skip
