"""Bodies of the uploaded-models API (`/api/uploaded-models`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UploadForm(BaseModel):
    """The text fields of `POST /api/uploaded-models` (the file is the `file` part, the class
    names the optional `labels` part: UTF-8 text, one name a line)."""

    name: str = Field(min_length=1, max_length=60, description="what the model is called here")
    architecture: str | None = Field(
        None, min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$",
        description="a zoo model: the file is then its state dict (.safetensors, .pth or .pt, "
        "read with weights_only), not an ONNX model",
    )  # fmt: skip


class UploadedModelOut(BaseModel):
    id: str
    model: str  # the name every route takes (`onnx_<id>`)
    title: str
    input_shape: list[int]  # channels, height, width
    output_shape: list[int]
    num_classes: int | None
    labels: list[str] | None
    opset: int
    producer: str
    operators: list[str]
    nodes: int
    parameters: int
    file_bytes: int
    created_at: float
    kind: str  # "onnx", or "state_dict" (a zoo architecture with uploaded weights)
    architecture: str | None

    @classmethod
    def of(cls, record) -> UploadedModelOut:  # app.uploaded_models.StoredModel
        spec = record.spec()
        return cls(
            id=record.id,
            model=record.name,
            title=record.title,
            input_shape=list(record.input_shape),
            output_shape=list(record.output_shape),
            num_classes=spec.num_classes,
            labels=list(record.labels) if record.labels else None,
            opset=record.opset,
            producer=record.producer,
            operators=list(record.operators),
            nodes=record.nodes,
            parameters=record.parameters,
            file_bytes=record.file_bytes,
            created_at=record.created_at,
            kind=record.kind,
            architecture=record.architecture,
        )


class UploadedModelCreated(BaseModel):
    owner_token: str = Field(description="shown once: send it as X-Model-Token to delete")
    model: UploadedModelOut
