"""A student's own models: upload an ONNX file, or a state dict for a zoo architecture (and
class names), list them, delete one.

The file is checked and converted before it is stored (`cnncore.onnx_import`); a refusal is a
422 naming `model` with an `onnx_*` type. The answer carries the owner token once. The model is
then named `onnx_<id>` wherever a zoo model's name is taken (/api/features, summaries, runs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path as FilePath
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from app.deps import settings_dep
from app.errors import core_error_response
from app.limits import heavy_work
from app.owner_tokens import check_owner, token_header
from app.schemas.uploaded_models import UploadedModelCreated, UploadedModelOut, UploadForm
from app.settings import Settings
from app.uploaded_models import (
    ID_PATTERN,
    StoreFull,
    UploadedModels,
    get_uploaded_models,
    parse_labels,
)
from app.uploads import FORM_OVERHEAD, refusal, validated_fields
from cnncore.errors import CNNCoreError

router = APIRouter(prefix="/api/uploaded-models", tags=["uploaded models"])

ModelId = Annotated[str, Path(pattern=ID_PATTERN)]
Store = Annotated[UploadedModels, Depends(get_uploaded_models)]
AppSettings = Annotated[Settings, Depends(settings_dep)]
Token = token_header("X-Model-Token")
LIMIT_SETTING = "setting CNNVIZ_ONNX_MAX_BYTES"  # named in the refusal: a server may raise it

_FILE = {"type": "string", "format": "binary"}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "name"],
                    "properties": {
                        "file": _FILE,
                        "labels": _FILE,
                        **UploadForm.model_json_schema()["properties"],
                    },
                }
            }
        },
    }
}


async def _read_upload(
    request: Request, settings: Settings
) -> tuple[UploadForm, bytes, bytes | None, str]:
    """The form within bounds: (fields, the file's bytes, the labels bytes or None, the file's
    name)."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise refusal(
            411, "file", "send the upload with a Content-Length header", "length_required"
        )
    limit, labels_limit = settings.onnx_max_bytes, settings.onnx_max_labels_bytes
    if int(declared) > limit + labels_limit + FORM_OVERHEAD:
        raise refusal(413, "file", f"the upload is over {limit:,} bytes ({LIMIT_SETTING})",
                      "too_large", limit=limit)  # fmt: skip
    async with request.form(max_files=2, max_fields=4) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        parsed = validated_fields(UploadForm, fields)
        upload, labels = form.get("file"), form.get("labels")
        if not isinstance(upload, UploadFile):
            raise refusal(422, "file", "send the .onnx file in the 'file' part", "missing")
        data, filename = await upload.read(limit + 1), upload.filename or ""
        names = await labels.read(labels_limit + 1) if isinstance(labels, UploadFile) else None
    if len(data) > limit:
        raise refusal(413, "file", f"the file is over {limit:,} bytes ({LIMIT_SETTING})",
                      "too_large", limit=limit)  # fmt: skip
    if names is not None and len(names) > labels_limit:
        raise refusal(
            413,
            "labels",
            f"the labels file is over {labels_limit:,} bytes",
            "too_large",
            limit=labels_limit,
        )
    return parsed, data, names, filename


@router.post(
    "",
    response_model=UploadedModelCreated,
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    dependencies=[Depends(heavy_work("models"))],
)
async def upload_model(request: Request, store: Store, settings: AppSettings) -> Any:
    """Check, convert and store an ONNX model; the answer carries its owner token (once)."""
    form, data, names, filename = await _read_upload(request, settings)

    def work() -> tuple:
        labels = parse_labels(names, settings.max_model_classes)
        if form.architecture is None:
            return store.add(data, form.name, labels)
        suffix = PurePath(filename).suffix.lower()
        with tempfile.NamedTemporaryFile(suffix=suffix) as file:  # torch.load reads a path
            file.write(data)
            file.flush()
            return store.add_state_dict(FilePath(file.name), suffix, form.architecture, form.name,
                                        labels)  # fmt: skip

    try:
        record, token = await run_in_threadpool(work)
    except CNNCoreError as exc:
        return core_error_response(exc, "body")
    except StoreFull as exc:
        raise HTTPException(
            409,
            detail=f"{exc.args[0]} uploaded models are stored, the most "
            "this server keeps: delete one first",
        ) from exc
    return UploadedModelCreated(owner_token=token, model=UploadedModelOut.of(record))


@router.get("", response_model=list[UploadedModelOut])
def list_models(store: Store) -> list[UploadedModelOut]:
    """Every uploaded model, oldest first."""
    return [UploadedModelOut.of(record) for record in store.list()]


@router.get("/{model_id}", response_model=UploadedModelOut)
def get_model(model_id: ModelId, store: Store) -> UploadedModelOut:
    """One uploaded model: its input, output, operators and class names."""
    record = store.get(model_id)
    if record is None:
        raise HTTPException(404, detail=f"no uploaded model {model_id!r}")
    return UploadedModelOut.of(record)


@router.delete("/{model_id}", status_code=204, response_class=Response)
def delete_model(model_id: ModelId, store: Store, token: Token = None) -> Response:
    """Delete an uploaded model (its owner token in X-Model-Token)."""
    record = store.get(model_id)
    if record is None:
        raise HTTPException(404, detail=f"no uploaded model {model_id!r}")
    check_owner(
        record.token_digest,
        token,
        lambda status, why: HTTPException(status, why),
        "send the model's owner token in X-Model-Token",
        "this token does not own the model",
    )
    store.delete(model_id)
    return Response(status_code=204)
