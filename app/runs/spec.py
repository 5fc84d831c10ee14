"""From a validated request to a run: the config that is stored, and the spec a worker runs.

The stored config is `TrainConfig.to_dict()` plus `label` and `init_from`, exactly what was
trained (a transfer run's architecture is the source's, whatever the request said), so a
stored run can be repeated, exported and compared field by field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.runs.store import RunStore
from app.schemas.runs import RunCreate, check_run_limits
from app.settings import Settings
from cnncore.datasets.standard import STANDARD_DATASETS
from cnncore.errors import CNNCoreError
from cnncore.training import TrainConfig
from cnncore.transfer import plan_transfer

__all__ = [
    "CHECKPOINT_FILE",
    "FINAL_CHECKPOINT",
    "RunSpec",
    "epoch_checkpoint",
    "newest_checkpoint",
    "plan_run",
]

FINAL_CHECKPOINT = "final.safetensors"
# Every checkpoint name is made here, by the server; a name read back is checked against this.
CHECKPOINT_FILE = re.compile(r"^(epoch-\d{3,5}|final)\.safetensors$")


def epoch_checkpoint(epoch: int) -> str:
    return f"epoch-{epoch:03d}.safetensors"


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs, picklable (it crosses into a spawned process)."""

    run_id: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    checkpoint_dir: str
    source_checkpoint: str | None = None  # transfer learning: the source run's checkpoint
    freeze: tuple[str, ...] = ()
    replace_head: bool = True
    keep_checkpoints: int = 3  # newest epoch checkpoints kept (the final one always is)

    @classmethod
    def of(
        cls, run_id: str, stored: dict[str, Any], checkpoint_dir: Path,
        source_checkpoint: Path | None, keep_checkpoints: int,
    ) -> RunSpec:  # fmt: skip
        config = {k: v for k, v in stored.items() if k not in ("label", "init_from")}
        transfer = stored.get("init_from") or {}
        return cls(
            run_id, config, str(checkpoint_dir),
            str(source_checkpoint) if source_checkpoint else None,
            tuple(transfer.get("freeze", ())), bool(transfer.get("replace_head", True)),
            keep_checkpoints,
        )  # fmt: skip


def newest_checkpoint(store: RunStore, checkpoints_dir: Path, run_id: str) -> Path:
    """The newest checkpoint file of a run (its final one once finished); LookupError when
    the run or its checkpoint does not exist. Only server-made names are ever joined."""
    record = store.get_run(run_id)
    if record is None:
        raise LookupError(f"no training run has the id {run_id!r}")
    name = record.checkpoint
    if name is None or not CHECKPOINT_FILE.match(name):
        raise LookupError(f"run {run_id} has no checkpoint yet (one is saved every epoch)")
    path = checkpoints_dir / run_id / name
    if not path.is_file():
        raise LookupError(f"the checkpoint {name} of run {run_id} is missing on disk")
    return path


def plan_run(
    body: RunCreate, settings: Settings, checkpoint_of: Callable[[str], Path]
) -> dict[str, Any]:
    """Check a requested run completely (limits, names, ranges, transfer source and layers)
    and return the config to store. `checkpoint_of(run_id)` finds a run's newest checkpoint
    and raises LookupError when there is none."""
    check_run_limits(body, settings)
    values = body.model_dump(exclude={"label", "init_from"})
    values["device"] = values["device"] or settings.device
    if values["data"]["name"] in STANDARD_DATASETS:
        if settings.datasets_dir is None:
            raise CNNCoreError(
                f"{values['data']['name']} is read from a local folder, and this server has "
                "none (setting CNNVIZ_DATASETS_DIR); choose a bundled dataset", "data.name",
            )  # fmt: skip
        values["data"]["root"] = str(settings.datasets_dir)
    config = TrainConfig.from_dict(values)
    config.check()
    init_from = body.init_from
    if init_from is not None:
        try:
            source = checkpoint_of(init_from.run_id)
        except LookupError as exc:
            raise CNNCoreError(str(exc.args[0] if exc.args else exc), "init_from.run_id") from exc
        config = plan_transfer(source, config, init_from.freeze, init_from.replace_head).config
    return {
        **config.to_dict(),
        "label": body.label,
        "init_from": init_from.model_dump() if init_from else None,
    }
