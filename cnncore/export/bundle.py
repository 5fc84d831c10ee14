"""A trained run's checkpoint as files to take away: ONNX, safetensors, a standalone PyTorch
file, a model card (Markdown and JSON), or all of them in one zip (no PyTorch file for a network
converted from an uploaded ONNX file: it has no source to write).

The safetensors file holds the state dict (exactly the checkpoint's tensors) and one metadata
entry, so the same weights always give the same bytes and the same sha256, which the card and
the PyTorch file state. Every file depends on the checkpoint alone (the card is dated by it),
so a format made on its own is the same file as in the zip. The training checkpoint itself is
not handed out: its metadata holds server paths.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, BinaryIO

from safetensors.torch import save
from torch import fx

from cnncore.checkpoint import Checkpoint
from cnncore.errors import CNNCoreError
from cnncore.export.card import card_json, card_markdown, model_card
from cnncore.export.onnx_file import OPSET, onnx_bytes
from cnncore.export.pycode import PyFileFacts, python_file
from cnncore.training import plain_json

__all__ = ["EXPORT_FORMATS", "ExportFile", "RunFacts", "export_run", "file_names", "write_export"]

EXPORT_FORMATS = ("onnx", "safetensors", "py", "card", "card_json", "zip")
_MEDIA = {"onnx": "application/octet-stream", "safetensors": "application/octet-stream",
          "py": "text/x-python; charset=utf-8", "card": "text/markdown; charset=utf-8",
          "card_json": "application/json", "zip": "application/zip"}  # fmt: skip
_SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors", "py": ".py", "card": ".md",
           "card_json": ".json", "zip": ".zip"}  # fmt: skip


@dataclass(frozen=True)
class RunFacts:
    """What the run's record adds to its checkpoint."""

    id: str
    label: str
    status: str
    created_at: float  # Unix seconds
    init_from: dict[str, Any] | None
    epochs: list[dict[str, Any]]  # per-epoch metrics rows (epoch, train_loss, val_accuracy…)
    saved_at: float  # when the checkpoint was written (Unix seconds): the card's date


@dataclass(frozen=True)
class ExportFile:
    name: str
    media_type: str
    data: bytes


def cnnviz_version() -> str:
    try:
        return version("cnnviz")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def file_names(model: str, run_id: str) -> dict[str, str]:
    """`cnnviz_<model>_<run>.<suffix>`: a name Python can import the .py by."""
    stem = f"cnnviz_{model}_{run_id}"
    return {fmt: stem + suffix for fmt, suffix in _SUFFIX.items()}


def _weights(checkpoint: Checkpoint, run: RunFacts) -> bytes:
    state = {k: v.detach().to("cpu").contiguous() for k, v in checkpoint.model.state_dict().items()}
    t = checkpoint.trained
    # one entry: safetensors writes a metadata map in no fixed order, one key has one order
    facts = {
        "model": t.model,
        "run": run.id,
        "input_shape": list(t.input_shape),
        "classes": list(t.labels or ()),
        "mean": list(t.mean),
        "std": list(t.std),
    }
    return save(state, metadata={"cnnviz": json.dumps(facts, sort_keys=True)})


def export_run(checkpoint: Checkpoint, run: RunFacts, fmt: str) -> ExportFile:
    """One export of the run's weights (`fmt` one of EXPORT_FORMATS), in memory."""
    buffer = io.BytesIO()
    name, media_type = write_export(checkpoint, run, fmt, buffer)
    return ExportFile(name, media_type, buffer.getvalue())


def write_export(checkpoint: Checkpoint, run: RunFacts, fmt: str, out: BinaryIO) -> tuple[str, str]:
    """Write one export into `out` (a zip is written entry by entry, never held whole);
    returns its file name and media type."""
    if fmt not in EXPORT_FORMATS:
        expected = list(EXPORT_FORMATS)
        raise CNNCoreError(f"format must be one of {', '.join(expected)}, not {fmt!r}",
                           "format", code="enum", ctx={"expected": expected})  # fmt: skip
    t = checkpoint.trained
    names = file_names(t.model, run.id)
    weights = _weights(checkpoint, run)
    sha256 = hashlib.sha256(weights).hexdigest()
    files: dict[str, bytes] = {"safetensors": weights}
    model = checkpoint.model.to("cpu").eval()
    # a network converted from an uploaded ONNX file (a transfer run's) is a graph of its own
    # layers with no PyTorch source to write: its ONNX and safetensors files are its export
    has_source = not isinstance(model, fx.GraphModule)
    if fmt == "py" and not has_source:
        raise CNNCoreError(
            "this run's network was converted from an uploaded ONNX file: there is no PyTorch "
            "source to write; take its ONNX or safetensors file", "format",
            code="export_no_python",
        )  # fmt: skip
    if fmt in ("onnx", "zip"):
        metadata = {"cnnviz_run": run.id, "model": t.model, "weights_sha256": sha256,
                    "input_shape": json.dumps(list(t.input_shape)),
                    "mean": json.dumps(list(t.mean)), "std": json.dumps(list(t.std)),
                    "classes": json.dumps(list(t.labels or ()), ensure_ascii=False)}  # fmt: skip
        files["onnx"] = onnx_bytes(model, t.input_shape, metadata)
    if fmt in ("py", "zip") and has_source:
        title = f"{t.model} trained by cnnviz (run {run.id}) on {t.dataset}"
        facts = PyFileFacts(title, names["safetensors"], t.input_shape, tuple(t.labels or ()),
                            t.mean, t.std, sha256)  # fmt: skip
        files["py"] = python_file(model, facts).encode()
    if fmt in ("card", "card_json", "zip"):
        card = model_card(
            run={"id": run.id, "label": run.label, "status": run.status,
                 "created_at": run.created_at, "init_from": run.init_from},
            trained=plain_json(asdict(t)), config=checkpoint.config.to_dict(), epochs=run.epochs,
            files={**{k: names[k] for k in ("onnx", "safetensors", "py")},
                   **({} if has_source else {"py": None}),
                   "weights_sha256": sha256, "onnx_opset": OPSET},
            version=cnnviz_version(), saved_at=run.saved_at,
        )  # fmt: skip
        files["card"] = card_markdown(card).encode()
        files["card_json"] = card_json(card).encode()
    if fmt != "zip":
        out.write(files[fmt])
        return names[fmt], _MEDIA[fmt]
    with zipfile.ZipFile(out, "w") as archive:
        # entries dated by the checkpoint, not by the clock: the same weights, the same zip
        when = time.gmtime(run.saved_at)[:6]
        for key in ("py", "safetensors", "onnx", "card", "card_json")[0 if has_source else 1 :]:
            entry = zipfile.ZipInfo(names[key], date_time=max(when, (1980, 1, 1, 0, 0, 0)))
            # float weights barely compress (7% for AlexNet) and deflating them costs seconds
            binary = key in ("safetensors", "onnx")
            entry.compress_type = zipfile.ZIP_STORED if binary else zipfile.ZIP_DEFLATED
            archive.writestr(entry, files.pop(key))  # let go of each file once written
    return names["zip"], _MEDIA["zip"]
