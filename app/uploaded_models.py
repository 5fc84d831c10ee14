"""Uploaded ONNX models on disk, and their registration as models every route can name.

    <data dir>/models/<id>/model.onnx     the file as uploaded (read again only by the importer)
    <data dir>/models/<id>/model.json     its description: name, owner token digest, shapes, labels

An upload is checked and converted in full (`cnncore.onnx_import`) before anything is written;
its folder is written under a temporary name and renamed, so a crash leaves no half model. The
model is then known to the registry as `onnx_<id>` (`cnncore.uploaded`): /features, summaries,
receptive fields and training runs take it by that name. Converted modules are kept for the
`onnx_models_cached` most recently used models; the others convert again from their file, unless
the module is still held elsewhere (/features' cache shares the store's module, through
`cnncore.uploaded.load_uploaded`): then that one is taken back, so a model is in memory once.
Deleting needs the owner token answered once at upload (only its SHA-256 is stored).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors.torch import load_file, save
from torch import nn

from app.owner_tokens import new_control_token, token_digest, token_matches
from app.settings import Settings, get_settings
from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError, find_uploaded_with
from cnncore.onnx_import import ImportedModel, OnnxLimits, import_onnx
from cnncore.pretrained import build_with
from cnncore.pretrained_files import read_state_dict
from cnncore.uploaded import (
    UPLOADED_PREFIX,
    UploadedSpec,
    forget_uploaded_model,
    register_uploaded_model,
    state_dict_network,
)

__all__ = ["ID_PATTERN", "StoredModel", "UploadedModels", "get_uploaded_models", "onnx_limits"]

ID_PATTERN = r"^[0-9a-f]{16}$"
_ID = re.compile(ID_PATTERN)
MODEL_FILE, DESCRIPTION = "model.onnx", "model.json"
STATE_FILE = "model.safetensors"  # a state dict, written again as safetensors once checked
WEIGHTS_PREFIX = "weights_"  # the name of a zoo architecture with uploaded weights
MAX_LABEL = 100  # characters of one class name


@dataclass(frozen=True)
class StoredModel:
    id: str
    title: str
    token_digest: str
    created_at: float
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]
    opset: int
    producer: str
    operators: tuple[str, ...]
    nodes: int
    parameters: int
    file_bytes: int
    labels: tuple[str, ...] | None
    kind: str = "onnx"  # or "state_dict": a zoo architecture with the user's weights
    architecture: str | None = None  # the zoo model a state dict is for
    config: dict[str, int] | None = None  # its build config (in_channels, num_classes)

    @property
    def name(self) -> str:
        return f"{UPLOADED_PREFIX if self.kind == 'onnx' else WEIGHTS_PREFIX}{self.id}"

    def spec(self) -> UploadedSpec:
        return UploadedSpec(self.name, self.title, self.input_shape, self.output_shape, self.labels)

    @classmethod
    def read(cls, path: Path) -> StoredModel:
        values = json.loads(path.read_text("utf-8"))
        values["config"] = values.get("config")
        for key in ("input_shape", "output_shape", "operators"):
            values[key] = tuple(values[key])
        if values["labels"] is not None:
            values["labels"] = tuple(values["labels"])
        return cls(**values)


def onnx_limits(settings: Settings) -> OnnxLimits:
    return OnnxLimits(
        max_bytes=settings.onnx_max_bytes,
        max_nodes=settings.onnx_max_nodes,
        max_parameters=settings.onnx_max_parameters,
        max_input_pixels=settings.onnx_max_input_pixels,
        max_input_channels=settings.max_model_channels,
    )


def parse_labels(text: bytes | None, limit: int) -> tuple[str, ...] | None:
    """Class names, one a line (blank lines at the end ignored); None without a file."""
    if text is None:
        return None
    try:
        lines = text.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise CNNCoreError(
            "the labels file must be UTF-8 text", "labels", code="labels_not_text"
        ) from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > limit:
        raise CNNCoreError(
            f"the labels file has {len(lines)} lines; at most {limit} are allowed",
            "labels",
            code="labels_too_many",
            ctx={"count": len(lines), "limit": limit},
        )
    return tuple(line.strip()[:MAX_LABEL] for line in lines) or None


class StoreFull(Exception):
    """No room for one more uploaded model (`onnx_max_models`)."""


class UploadedModels:
    def __init__(
        self, root: Path, limits: OnnxLimits, max_models: int, cached: int, concurrency: int = 1
    ) -> None:
        self.root = root
        self.limits, self.max_models, self.cached = limits, max_models, cached
        # each conversion holds the file, the parsed model and the weights (~3 × the file)
        self.converting = threading.BoundedSemaphore(concurrency)
        self._lock = threading.RLock()
        self._records: dict[str, StoredModel] = {}
        self._modules: OrderedDict[str, nn.Module] = OrderedDict()
        # every converted module still alive, whoever holds it: never converted twice
        self._alive: weakref.WeakValueDictionary[str, nn.Module] = weakref.WeakValueDictionary()
        # the folder is made by the first upload, not here: a server that never stores a model
        # (a test's app, a lesson check) writes nothing
        for folder in sorted(root.iterdir()) if root.is_dir() else ():
            if _ID.match(folder.name) and (folder / DESCRIPTION).is_file():
                try:
                    self._remember(StoredModel.read(folder / DESCRIPTION))
                except (OSError, ValueError, TypeError, KeyError):
                    continue  # a damaged description: the model is not offered

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadedModels:
        return cls(
            settings.data_dir / "models",
            onnx_limits(settings),
            settings.onnx_max_models,
            settings.onnx_models_cached,
            settings.onnx_concurrency,
        )

    def find(self, name: str) -> bool:
        """Register a model another server process stored (several workers share the folder)."""
        model_id = name.split("_", 1)[-1]
        folder = self.root / model_id
        if not _ID.match(model_id) or not (folder / DESCRIPTION).is_file():
            return False
        try:
            record = StoredModel.read(folder / DESCRIPTION)
        except (OSError, ValueError, TypeError, KeyError):
            return False
        if record.name != name:
            return False
        with self._lock:
            self._remember(record)
        return True

    def _remember(self, record: StoredModel) -> None:
        self._records[record.id] = record
        register_uploaded_model(record.spec(), lambda: self.module(record.id))

    def list(self) -> list[StoredModel]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def get(self, model_id: str) -> StoredModel | None:
        return self._records.get(model_id)

    def add(
        self, data: bytes, title: str, labels: tuple[str, ...] | None
    ) -> tuple[StoredModel, str]:
        """Convert, then store; (record, owner token). Refusals: CNNCoreError, StoreFull."""
        if len(self._records) >= self.max_models:
            raise StoreFull(self.max_models)
        with self.converting:
            imported = import_onnx(data, self.limits)
        token, model_id = new_control_token(), secrets.token_hex(8)
        record = _record(model_id, title, token, imported, len(data), labels)
        self._write(record, {MODEL_FILE: data}, imported.module)
        return record, token

    def add_state_dict(self, path: Path, suffix: str, architecture: str, title: str,
                       labels: tuple[str, ...] | None) -> tuple[StoredModel, str]:  # fmt: skip
        """A zoo architecture with the state dict in `path` (.safetensors, or .pth/.pt read with
        `weights_only`); stored as safetensors. Refusals: CNNCoreError, StoreFull."""
        if len(self._records) >= self.max_models:
            raise StoreFull(self.max_models)
        with self.converting:
            return self._add_state_dict(path, suffix, architecture, title, labels)

    def _add_state_dict(self, path: Path, suffix: str, architecture: str, title: str,
                        labels: tuple[str, ...] | None) -> tuple[StoredModel, str]:  # fmt: skip
        state = read_state_dict(path, suffix)
        count = sum(t.numel() for t in state.values())
        limit = self.limits.max_parameters
        if count > limit:
            raise CNNCoreError(f"the file holds {count} values, more than the {limit} allowed",
                               "file", code="onnx_too_many_parameters",
                               ctx={"count": count, "limit": limit})  # fmt: skip
        model, config, input_shape, output_shape = state_dict_network(architecture, state)
        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        token, model_id = new_control_token(), secrets.token_hex(8)
        record = StoredModel(
            id=model_id, title=title, token_digest=token_digest(token), created_at=time.time(),
            input_shape=input_shape, output_shape=output_shape, opset=0, producer="state dict",
            operators=(), nodes=0, parameters=count, file_bytes=path.stat().st_size,
            labels=labels, kind="state_dict", architecture=architecture, config=config,
        )  # fmt: skip
        self._write(record, {STATE_FILE: save(tensors)}, model)
        return record, token

    def _write(self, record: StoredModel, files: dict[str, bytes], module: nn.Module) -> None:
        """The model's folder, written under a temporary name then renamed; then registered."""
        scratch = self.root / f".{record.id}.partial"
        scratch.mkdir(parents=True)
        try:
            for name, data in files.items():
                (scratch / name).write_bytes(data)
            (scratch / DESCRIPTION).write_text(json.dumps(asdict(record)), "utf-8")
            with self._lock:
                if len(self._records) >= self.max_models:
                    raise StoreFull(self.max_models)
                scratch.rename(self.root / record.id)
                self._keep(record.id, module)
                self._remember(record)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def owned(self, model_id: str, token: str) -> bool:
        record = self._records.get(model_id)
        return record is not None and token_matches(record.token_digest, token)

    def delete(self, model_id: str) -> bool:
        with self._lock:
            record = self._records.pop(model_id, None)
            if record is None:
                return False
            forget_uploaded_model(record.name)
            self._modules.pop(model_id, None)
            self._alive.pop(model_id, None)
        shutil.rmtree(self.root / model_id, ignore_errors=True)
        return True

    def module(self, model_id: str) -> nn.Module:
        """The converted module (shared: callers copy before changing it)."""
        with self._lock:
            found = self._modules.get(model_id)
            found = self._alive.get(model_id) if found is None else found
            if found is not None:
                self._keep(model_id, found)
                return found
            if model_id not in self._records:
                raise KeyError(model_id)
        record = self._records[model_id]
        folder = self.root / model_id
        if not (folder / DESCRIPTION).is_file():  # deleted by another server process
            with self._lock:
                self._records.pop(model_id, None)
            forget_uploaded_model(record.name)
            raise UnknownModelError(f"the uploaded model {record.name!r} was deleted", "model")
        with self.converting:
            if record.kind == "state_dict":
                state = load_file(str(folder / STATE_FILE))  # safetensors: no code can run
                module = build_with(record.architecture, state, dict(record.config or {}))
            else:
                module = import_onnx((folder / MODEL_FILE).read_bytes(), self.limits).module
        with self._lock:  # another thread may have converted it meanwhile: keep one
            kept = self._alive.get(model_id)
            module = module if kept is None else kept
            self._keep(model_id, module)
        return module

    def _keep(self, model_id: str, module: nn.Module) -> None:
        self._modules[model_id] = self._alive[model_id] = module
        self._modules.move_to_end(model_id)
        while len(self._modules) > self.cached:
            self._modules.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            for record in self._records.values():
                forget_uploaded_model(record.name)
            self._records.clear()
            self._modules.clear()
            self._alive.clear()


def _record(
    model_id: str,
    title: str,
    token: str,
    imported: ImportedModel,
    size: int,
    labels: tuple[str, ...] | None,
) -> StoredModel:
    return StoredModel(
        id=model_id,
        title=title,
        token_digest=token_digest(token),
        created_at=time.time(),
        input_shape=imported.input_shape,
        output_shape=imported.output_shape,
        opset=imported.opset,
        producer=imported.producer,
        operators=imported.operators,
        nodes=imported.nodes,
        parameters=imported.parameters,
        file_bytes=size,
        labels=labels,
    )


_store: UploadedModels | None = None
_store_lock = threading.Lock()


def get_uploaded_models() -> UploadedModels:
    """The process-wide store (a FastAPI dependency; tests override it)."""
    global _store
    settings = get_settings()
    with _store_lock:
        # made again when the data folder changed (a test session's live server sets its own)
        if _store is None or _store.root != settings.data_dir / "models":
            if _store is not None:
                _store.close()
            _store = UploadedModels.from_settings(settings)
            find_uploaded_with(_store.find)
        return _store
