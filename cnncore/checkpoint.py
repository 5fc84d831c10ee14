"""Checkpoints of training runs: safetensors files (tensors only — no pickle, no code can run
when one is opened, unlike `torch.load` of an untrusted file), with JSON metadata:

- `format`: CHECKPOINT_FORMAT, so a stray safetensors file is refused;
- `train_config`: the run's `TrainConfig`, which rebuilds the same network (batch norm,
  dropout and activation switches included) before the weights are loaded;
- `trained`: the `cnncore.weights.TrainedMetadata` facts the feature-map page already uses for
  bundled weights (input shape, class names, normalisation, held-out accuracy), so a trained
  run can be looked at exactly like a bundled model (`Checkpoint.loaded_model`);
- `progress`: epoch, step, best epoch and validation loss, plus anything the caller adds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from cnncore.device import resolve_device
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier
from cnncore.training import TrainConfig, Trainer, plain_json
from cnncore.weights import LoadedModel, TrainedMetadata, WeightsInfo

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "cnnviz-checkpoint/1"


def _trained_metadata(trainer: Trainer) -> TrainedMetadata:
    c, data = trainer.config, trainer.data
    channels, height, width = data.input_shape
    # The accuracy of the weights being saved: the best epoch's when those were restored.
    at = (trainer.best_epoch or 0) if trainer.restored_best else trainer.epochs_completed
    score = trainer.val_accuracies[at - 1] if at else float("nan")
    return TrainedMetadata(
        model=c.model,
        config={
            "in_channels": channels,
            "num_classes": data.num_classes,
            "input_size": (height, width),
        },  # fmt: skip
        input_shape=(channels, height, width),
        dataset=data.name,
        labels=tuple(data.class_names),
        mean=tuple(data.mean),
        std=tuple(data.std),
        metric="accuracy",
        score=score,
        epochs=trainer.epochs_completed,
        seed=c.seed,
        train_size=len(data.train_labels),
        val_size=len(data.val_labels),
    )


def save_checkpoint(
    trainer: Trainer, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write the trainer's current weights and metadata. Safe between any two events."""
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in trainer.model.state_dict().items()}
    progress = {"epoch": trainer.epochs_completed, "step": trainer.step,
                "best_epoch": trainer.best_epoch, "best_val_loss": trainer.best_val_loss,
                "restored_best": trainer.restored_best, **(extra or {})}  # fmt: skip
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "train_config": json.dumps(trainer.config.to_dict()),
        "trained": json.dumps(plain_json(asdict(_trained_metadata(trainer)))),
        "progress": json.dumps(plain_json(progress)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


@dataclass
class Checkpoint:
    model: nn.Module  # rebuilt and loaded, in eval mode
    config: TrainConfig
    trained: TrainedMetadata
    progress: dict[str, Any]
    file: str  # the file name only (never a full path: it may be shown to users)

    def loaded_model(self) -> LoadedModel:
        """The form `cnncore.features` works with, as for a bundled trained model."""
        t = self.trained
        info = WeightsInfo("trained", t.input_shape, t.mean, t.std, 1.0, t.labels, t, self.file)
        return LoadedModel(t.model, self.model, info)


def _read(path: str | Path, tensors: bool) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            names = handle.keys() if tensors else []
            return metadata, {name: handle.get_tensor(name) for name in names}
    except (OSError, SafetensorError) as exc:
        raise CNNCoreError(f"not a readable checkpoint: {exc}", "checkpoint") from exc


def _parse(metadata: dict[str, str]) -> tuple[TrainConfig, TrainedMetadata, dict[str, Any]]:
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CNNCoreError("not a cnnviz training checkpoint", "checkpoint")
    try:
        config = TrainConfig.from_dict(json.loads(metadata["train_config"]))
        facts = json.loads(metadata["trained"])
        # JSON has no tuples; TrainedMetadata (and get_model's input_size) use them
        facts["config"]["input_size"] = tuple(facts["config"]["input_size"])
        for key in ("input_shape", "labels", "mean", "std"):
            facts[key] = tuple(facts[key])
        return config, TrainedMetadata(**facts), json.loads(metadata["progress"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CNNCoreError(f"checkpoint metadata is damaged: {exc}", "checkpoint") from exc


def read_checkpoint_info(path: str | Path) -> tuple[TrainConfig, TrainedMetadata, dict[str, Any]]:
    """Config, facts and progress of a checkpoint without reading its tensors (run lists)."""
    return _parse(_read(path, tensors=False)[0])


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild the run's network from its config and load the saved weights into it."""
    metadata, state = _read(path, tensors=True)
    config, trained, progress = _parse(metadata)
    model = build_classifier(
        config.model, trained.input_shape, len(trained.labels), activation=config.activation,
        batch_norm=config.batch_norm, dropout=config.dropout, width=config.width,
    )  # fmt: skip
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CNNCoreError(
            f"checkpoint weights do not fit {config.model}: {exc}", "checkpoint"
        ) from exc
    model = model.to(resolve_device(device)).eval()
    return Checkpoint(model, config, trained, progress, Path(path).name)
