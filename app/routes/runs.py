"""Training runs: start one, list them, watch one live (SSE), pause/resume/stop, export metrics,
list checkpoints. The work happens in `app.runs` (manager, worker processes, SQLite history)."""

from __future__ import annotations

from typing import Annotated, Literal, NoReturn

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from app.datasets.service import Datasets, get_datasets
from app.deps import settings_dep
from app.limits import client_address, heavy_work
from app.owner_tokens import check_owner, new_control_token, token_digest, token_header
from app.quotas import charge
from app.runs.export import ExportBusy, ExportUnavailable, run_export
from app.runs.history import metrics_csv, metrics_tables
from app.runs.manager import RunError, RunManager, get_run_manager
from app.runs.spec import plan_run
from app.runs.store import ACTIVE_STATUSES, FINISHED_STATUSES, RunRecord
from app.runs.stream import RunSubscription
from app.runs.uploaded_source import uploaded_record, uploaded_source
from app.schemas.runs import (
    RUN_ID_PATTERN,
    CheckpointOut,
    MetricsOut,
    RunCreate,
    RunCreated,
    RunOut,
)
from app.settings import Settings
from app.sse import RECONNECT_MS, parse_last_event_id
from app.uploaded_models import UploadedModels, get_uploaded_models
from cnncore.export.bundle import EXPORT_FORMATS
from cnncore.transfer import checkpoint_layers
from cnncore.transfer_sources import WeightsSource

router = APIRouter(prefix="/api/runs", tags=["runs"])

Manager = Annotated[RunManager, Depends(get_run_manager)]
AppSettings = Annotated[Settings, Depends(settings_dep)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN)]
Status = Annotated[list[str] | None, Query(max_length=len(ACTIVE_STATUSES + FINISHED_STATUSES))]
# The control token given to whoever started the run (RunCreated.owner_token).
RunToken = token_header("X-Run-Token")
# The owner token of an uploaded model a run starts from (UploadedModelCreated.owner_token).
ModelToken = token_header("X-Model-Token")


def _raise_http(exc: RunError) -> NoReturn:
    raise HTTPException(status_code=exc.status_code, detail=str(exc)) from exc


def _out(record: RunRecord) -> RunOut:
    config = record.config
    return RunOut(
        id=record.id, label=config.get("label") or "", status=record.status,
        source=record.source, model=config["model"], dataset=config["data"]["name"],
        created_at=record.created_at, updated_at=record.updated_at, error=record.error,
        checkpoint=record.checkpoint, summary=record.summary,
        last_event_id=record.last_event_id, config=config,
    )  # fmt: skip


def _record(manager: RunManager, run_id: str) -> RunRecord:
    try:
        return manager.get(run_id)
    except RunError as exc:
        _raise_http(exc)


@router.post(
    "", response_model=RunCreated, status_code=201, dependencies=[Depends(heavy_work("runs"))]
)
def create_run(body: RunCreate, request: Request, manager: Manager, settings: AppSettings,
               datasets: Annotated[Datasets, Depends(get_datasets)],
               models: Annotated[UploadedModels, Depends(get_uploaded_models)],
               model_token: ModelToken = None) -> RunCreated:  # fmt: skip
    """Check the config and start the run in a worker process (or queue it); the answer
    carries the run's control token, shown to this caller only. Starting from an uploaded
    model needs its owner token (header X-Model-Token)."""

    def uploaded_of(name: str) -> WeightsSource:
        check_owner(
            uploaded_record(models, name).token_digest, model_token, HTTPException,
            missing="training from an uploaded model needs its owner token (header "
            "X-Model-Token), given when it was uploaded",
            wrong="this token does not own the uploaded model (only whoever uploaded it can "
            "train from it)",
        )  # fmt: skip
        return uploaded_source(models, name, settings.run_models)

    config = plan_run(body, settings, manager.checkpoint_for_run, datasets.for_run, uploaded_of)
    charge("runs", client_address(request), settings)  # a valid start counts, a 422 does not
    token = new_control_token()
    try:
        record = manager.create(config, token_digest=token_digest(token))
    except RunError as exc:
        _raise_http(exc)
    url = str(request.url_for("run_events", run_id=record.id).path)
    return RunCreated(id=record.id, status=record.status, events_url=url, owner_token=token)


@router.get("", response_model=list[RunOut])
def list_runs(manager: Manager, status: Status = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[RunOut]:  # fmt: skip
    """Runs newest first, from the web and from `cnnviz train` alike."""
    unknown = set(status or ()) - set(ACTIVE_STATUSES + FINISHED_STATUSES)
    if unknown:
        detail = [{"loc": ["query", "status"], "msg": f"unknown status {sorted(unknown)[0]!r}",
                   "type": "value_error"}]  # fmt: skip
        raise HTTPException(422, detail=detail)
    return [_out(r) for r in manager.store.list_runs(limit, statuses=status or None)]


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, manager: Manager) -> RunOut:
    """One run: config, status, latest figures, newest checkpoint."""
    return _out(_record(manager, run_id))


async def _stream(subscription: RunSubscription):
    yield ServerSentEvent(retry=RECONNECT_MS, comment="run")
    async for frame in subscription.frames():
        yield frame  # encoded once per event, shared by every viewer
    # Without this the browser's EventSource would reconnect to a finished run forever.
    yield ServerSentEvent(event="done", data="{}")


@router.get("/{run_id}/events", name="run_events")
async def run_events(
    run_id: RunId, manager: Manager, settings: AppSettings,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> EventSourceResponse:  # fmt: skip
    """Server-Sent Events: every event of the run with its id, the stored history first;
    `Last-Event-ID` resumes after that id. A `done` event closes the stream after `end`."""
    try:
        subscription = manager.subscribe(run_id, parse_last_event_id(last_event_id))
    except RunError as exc:
        _raise_http(exc)
    # close() also as a background task: a viewer that leaves before the stream's first
    # event never runs the generator's own cleanup.
    return EventSourceResponse(_stream(subscription), ping=settings.run_ping_seconds,
                               background=BackgroundTask(subscription.close))  # fmt: skip


def _check_owner(manager: RunManager, run_id: str, token: str | None) -> None:
    """Only whoever started the run controls it: 401 without the token, 403 with another."""
    _record(manager, run_id)  # an unknown run is a 404 first
    check_owner(
        manager.store.run_token(run_id),
        token,
        HTTPException,
        missing="pausing, resuming, stopping or deleting a run needs the token its creator was "
        "given (header X-Run-Token)",
        wrong="this token does not control this run (only whoever started it can)",
    )


def _control(manager: RunManager, run_id: str, action: str, token: str | None) -> RunOut:
    _check_owner(manager, run_id, token)
    try:
        return _out(getattr(manager, action)(run_id))
    except RunError as exc:
        _raise_http(exc)


@router.post("/{run_id}/pause", response_model=RunOut)
def pause_run(run_id: RunId, manager: Manager, token: RunToken = None) -> RunOut:
    """Pause before the next step (a `paused` event confirms it). Needs X-Run-Token."""
    return _control(manager, run_id, "pause", token)


@router.post("/{run_id}/resume", response_model=RunOut)
def resume_run(run_id: RunId, manager: Manager, token: RunToken = None) -> RunOut:
    """Carry on training (a `resumed` event confirms it). Needs X-Run-Token."""
    return _control(manager, run_id, "resume", token)


@router.post("/{run_id}/stop", response_model=RunOut)
def stop_run(run_id: RunId, manager: Manager, token: RunToken = None) -> RunOut:
    """Stop after the current step; the weights so far are saved as the final checkpoint.
    Needs X-Run-Token."""
    return _control(manager, run_id, "stop", token)


@router.delete("/{run_id}", status_code=204)
def delete_run(run_id: RunId, manager: Manager, token: RunToken = None) -> Response:
    """Remove a finished run, its history and its checkpoints. Needs X-Run-Token."""
    _check_owner(manager, run_id, token)
    try:
        manager.delete(run_id)
    except RunError as exc:
        _raise_http(exc)
    return Response(status_code=204)


@router.get("/{run_id}/metrics.json", response_model=MetricsOut)
def metrics_json(run_id: RunId, manager: Manager) -> MetricsOut:
    """Every step's and epoch's scalar metrics, for export and run comparison."""
    record = _record(manager, run_id)
    tables = metrics_tables(manager.store, run_id)
    return MetricsOut(id=record.id, label=record.config.get("label") or "",
                      status=record.status, **tables)  # fmt: skip


@router.get("/{run_id}/metrics.csv", response_class=Response)
def metrics_as_csv(run_id: RunId, manager: Manager) -> Response:
    """The same metrics as one CSV table (a row per step and per epoch)."""
    _record(manager, run_id)
    body = metrics_csv(metrics_tables(manager.store, run_id))
    headers = {"Content-Disposition": f'attachment; filename="run-{run_id}-metrics.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/{run_id}/checkpoints", response_model=list[CheckpointOut])
def list_checkpoints(run_id: RunId, manager: Manager) -> list[CheckpointOut]:
    """The run's saved weights (safetensors), with the layers a transfer run may freeze."""
    try:
        found = manager.list_checkpoints(run_id)
    except RunError as exc:
        _raise_http(exc)
    if not found:
        return []
    layers, head = checkpoint_layers(manager.checkpoint_dir(run_id) / found[-1].file)
    return [CheckpointOut(file=c.file, bytes=c.bytes, final=c.final, epoch=c.epoch, step=c.step,
                          val_accuracy=c.val_accuracy, layers=layers, head=head)
            for c in found]  # fmt: skip


ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]


@router.get("/{run_id}/export", response_class=FileResponse,
            dependencies=[Depends(heavy_work("exports"))])  # fmt: skip
async def export_run_file(run_id: RunId, manager: Manager, settings: AppSettings,
                          format: ExportFormat = "zip") -> FileResponse:  # noqa: A002  # fmt: skip
    """A finished run's weights to take away: `onnx` (opset stated in the file and the card),
    `safetensors`, `py` (a standalone PyTorch file that loads the safetensors), `card`
    (Markdown) or `card_json`, or a `zip` of all five. Read access, like the run itself;
    409 while the run has no final weights."""
    try:
        made = await run_in_threadpool(run_export, manager, run_id, format, settings)
    except RunError as exc:
        _raise_http(exc)
    except ExportUnavailable as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except ExportBusy as exc:
        raise HTTPException(
            503, detail=str(exc), headers={"Retry-After": str(settings.retry_after_seconds)}
        ) from exc
    return FileResponse(made.path, media_type=made.media_type, filename=made.name)
