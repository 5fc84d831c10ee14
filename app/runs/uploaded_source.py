"""A user's uploaded model as a transfer run's source (`init_from.weights` "uploaded").

Planning (the server, `app.runs.spec`): the model is looked up by its name (`onnx_<id>`, or
`weights_<id>` for a state dict) in the store, and only its owner may train from it (the
owner token in `X-Model-Token`, checked by the route as deleting it is). An ONNX file's run is
built by that name (`cnncore.model_options.build_classifier` makes the converted network a
classifier); a state dict's run by its zoo architecture, which must be one runs may train.

The worker (`load_uploaded_source`) never receives a module: it reads the stored file again
under the server's limits and converts it with the same importer (`cnncore.onnx_import`), or
reads the safetensors of a state dict — nothing is pickled on the way. The converted model is
registered under its name in the worker too, so the run's config names a model the process
knows.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.uploaded_models import (
    DESCRIPTION,
    ID_PATTERN,
    MODEL_FILE,
    STATE_FILE,
    StoredModel,
    UploadedModels,
)
from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError
from cnncore.onnx_import import OnnxLimits, import_onnx
from cnncore.training import TrainConfig
from cnncore.transfer_sources import (
    WeightsSource,
    load_weights_source,
    uploaded_checkpoint,
    uploaded_trained,
)
from cnncore.uploaded import register_uploaded_model

__all__ = ["FIELD", "load_uploaded_source", "uploaded_record", "uploaded_source"]

FIELD = "init_from.model"
_ID = re.compile(ID_PATTERN)


def uploaded_record(store: UploadedModels, name: str) -> StoredModel:
    """The stored model called `name`; 404 (`unknown_model`, naming init_from.model) if none."""
    model_id = name.partition("_")[2]
    record = store.get(model_id) if _ID.match(model_id) else None
    if record is None and _ID.match(model_id) and store.find(name):  # stored by another worker
        record = store.get(model_id)
    if record is None or record.name != name:
        raise UnknownModelError(f"no uploaded model is called {name!r}", FIELD)
    return record


def _source(record: StoredModel, folder: Path) -> WeightsSource:
    if record.kind == "state_dict":
        trained = uploaded_trained(record.spec(), record.architecture or "")
        return WeightsSource("uploaded", trained.model, str(folder / STATE_FILE),
                             TrainConfig(model=trained.model), trained)  # fmt: skip
    trained = uploaded_trained(record.spec(), record.name)
    return WeightsSource("uploaded", record.name, str(folder / MODEL_FILE),
                         TrainConfig(model=record.name), trained)  # fmt: skip


def uploaded_source(
    store: UploadedModels, name: str, run_models: tuple[str, ...]
) -> WeightsSource:  # fmt: skip
    """The source a run plans with: facts from the stored description (no tensor read)."""
    record = uploaded_record(store, name)
    if record.kind == "state_dict" and record.architecture not in run_models:
        raise CNNCoreError(
            f"{record.title!r} holds weights for {record.architecture}, which runs here do not "
            f"train; runs train {', '.join(run_models)}", FIELD,
        )  # fmt: skip
    return _source(record, store.root / record.id)


def load_uploaded_source(file: str, limits: OnnxLimits):
    """In the worker: the source network rebuilt from the stored file (a `Checkpoint`)."""
    folder = Path(file).parent
    record = StoredModel.read(folder / DESCRIPTION)
    source = _source(record, folder)
    if record.kind == "state_dict":
        return load_weights_source(source)
    imported = import_onnx((folder / MODEL_FILE).read_bytes(), limits)
    register_uploaded_model(record.spec(), lambda: imported.module)
    return uploaded_checkpoint(imported.module, source.trained, record.title)
