"""Pictures sent to the API as multipart forms: bounded reading, then one picture chosen.

The declared length is checked before a byte is read (a body without one is refused: 411), at
most one file and a few text fields are parsed, the file is read up to its limit plus one byte
(so "too big" is known without reading on) and the text fields are validated by the route's own
pydantic form. Decoding is `cnncore.images.decode_image`'s, with the settings' byte, pixel and
aspect-ratio limits; a built-in sample comes from `cnncore.images.sample_image`. Routes decode
inside `FeatureCache.forward_slots`, so pictures decoded at once are as few as forward passes.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from app.settings import Settings
from cnncore.errors import CNNCoreError
from cnncore.images import DecodedImage, decode_image, sample_image

__all__ = [
    "FORM_OVERHEAD",
    "chosen_picture",
    "picture_form_schema",
    "read_picture_form",
    "validated_fields",
]

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small text fields
IMAGE_PART = {
    "type": "string",
    "format": "binary",
    "description": "JPEG, PNG, WebP, BMP or GIF (first frame)",
}

Form = TypeVar("Form", bound=BaseModel)


def refusal(status: int, field: str, message: str, kind: str, **ctx: int) -> HTTPException:
    """`kind` and `ctx` let the pages translate the refusal (app/errors.py)."""
    item = {"loc": ["body", field], "msg": message, "type": kind} | ({"ctx": ctx} if ctx else {})
    return HTTPException(status, detail=[item])


def picture_form_schema(form: type[BaseModel], required: list[str]) -> dict:
    """OpenAPI of a multipart body: the `image` file part and the form's text fields."""
    return {
        "type": "object",
        "required": required,
        "properties": {"image": IMAGE_PART, **form.model_json_schema()["properties"]},
    }


def validated_fields(form: type[Form], fields: dict[str, str]) -> Form:
    """A multipart form's text fields validated by `form`; errors as a JSON body's (422)."""
    try:
        return form.model_validate(fields)
    except ValidationError as exc:
        # app/errors.py renders these like a JSON body's errors (type and ctx, no input)
        raise RequestValidationError(
            [{**e, "loc": ("body", *map(str, e["loc"]))} for e in exc.errors(include_url=False)]
        ) from exc


async def read_picture_form(
    request: Request, settings: Settings, form: type[Form], max_fields: int = 8
) -> tuple[Form, bytes | None]:
    """Parse a multipart body within bounds: (validated text fields, the `image` bytes or None)."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise refusal(
            411, "image", "send the picture with a Content-Length header", "length_required"
        )
    if int(declared) > settings.max_upload_bytes + FORM_OVERHEAD:
        limit = settings.max_upload_bytes
        raise refusal(413, "image", f"the upload is over {limit:,} bytes", "too_large", limit=limit)
    async with request.form(max_files=1, max_fields=max_fields) as parts:
        fields = {k: v for k, v in parts.items() if isinstance(v, str)}
        parsed = validated_fields(form, fields)
        upload = parts.get("image")
        data = (
            await upload.read(settings.max_upload_bytes + 1)
            if isinstance(upload, UploadFile)
            else None
        )
    return parsed, data


def chosen_picture(sample: str | None, data: bytes | None, settings: Settings) -> DecodedImage:
    """The uploaded picture decoded within the limits, or the named sample; exactly one."""
    if data is not None and sample:
        raise CNNCoreError("send either an image file or a sample name, not both", "image")
    if sample:
        return sample_image(sample)
    if data is None:
        raise CNNCoreError("send an image file or choose a sample picture", "image")
    return decode_image(
        data,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        max_aspect_ratio=settings.max_image_aspect_ratio,
    )
