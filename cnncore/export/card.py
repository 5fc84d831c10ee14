"""A model card for an exported run: what the network is, what it learnt from, how well it does.

After Mitchell et al. (2019), "Model Cards for Model Reporting" (FAT* '19), cut to what a
training run knows for certain: the architecture and its switches, the data (dataset, version,
classes, split sizes), the full training config, the per-epoch metrics and the held-out accuracy
of the exported weights, how inputs must be prepared, and the files (with the weights' sha256
and the ONNX opset). Written twice from one dict: JSON for programs, Markdown for people.
Server paths in the config (dataset folders, uploaded archives, manifests) are left out.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["card_json", "card_markdown", "model_card", "public_config"]

_PATHS = ("root", "archive", "manifest")  # data fields holding server paths
_EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The training config without the server's paths."""
    data = {k: v for k, v in config.get("data", {}).items() if k not in _PATHS}
    return {**config, "data": data}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def model_card(
    *, run: dict[str, Any], trained: dict[str, Any], config: dict[str, Any],
    epochs: list[dict[str, Any]], files: dict[str, Any], version: str, saved_at: float,
) -> dict[str, Any]:  # fmt: skip
    """The card as plain JSON. `run`: id, label, status, created_at; `trained`: the
    checkpoint's TrainedMetadata as a dict; `files`: names, sha256 of the weights, opset."""
    data = public_config(config).get("data", {})
    return {
        "name": f"{trained['model']} — cnnviz run {run['id']}",
        "cnnviz_version": version,
        "weights_saved_at": _iso(saved_at),
        "run": {"id": run["id"], "label": run.get("label") or "", "status": run["status"],
                "created_at": _iso(run["created_at"])},  # fmt: skip
        "model": {"architecture": trained["model"], "activation": config.get("activation"),
                  "batch_norm": config.get("batch_norm"), "dropout": config.get("dropout"),
                  "width": config.get("width"), "init_from": run.get("init_from")},  # fmt: skip
        "data": {"dataset": trained["dataset"], "dataset_id": data.get("dataset"),
                 "dataset_version": data.get("dataset_version"),
                 "classes": list(trained["labels"] or ()), "train_size": trained["train_size"],
                 "val_size": trained["val_size"], "val_fraction": data.get("val_fraction"),
                 "seed": data.get("seed")},  # fmt: skip
        "input": {"shape": list(trained["input_shape"]), "scale": "[0, 1]",
                  "mean": list(trained["mean"]), "std": list(trained["std"]),
                  "normalise": "(x - mean) / std per channel"},  # fmt: skip
        "metrics": {"metric": trained["metric"], "val_score": _finite(trained["score"]),
                    "epochs_trained": trained["epochs"],
                    "epochs": [{k: _finite(row.get(k)) for k in _EPOCH_COLUMNS}
                               for row in epochs]},  # fmt: skip
        "config": public_config(config),
        "files": files,
        "intended_use": "teaching and experiments: a network trained in a few minutes on a "
                        "small dataset, not a tested product",
    }  # fmt: skip


def card_json(card: dict[str, Any]) -> str:
    return json.dumps(card, indent=2, ensure_ascii=False) + "\n"


def _start(init_from: dict[str, Any]) -> str:
    """Where a transfer run's weights came from: a run, or published/bundled weights of a model
    (`init_from` holds either `run_id` or `weights` + `model`)."""
    if init_from.get("run_id"):
        start = f"run {init_from['run_id']}"
    else:
        start = f"the {init_from.get('weights')} weights of {init_from.get('model')}"
    frozen = init_from.get("freeze") or ()
    if init_from.get("freeze_backbone"):
        return f"{start}, backbone frozen"
    return f"{start}, frozen: {', '.join(frozen)}" if frozen else start


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def card_markdown(card: dict[str, Any]) -> str:
    """The same card for people: headings, a facts table, the epochs, how to run the files."""
    model, data, inp, metrics, files = (card[k] for k in ("model", "data", "input", "metrics",
                                                          "files"))  # fmt: skip
    score = metrics["val_score"]
    shown = f"{100 * score:.2f}%" if metrics["metric"] == "accuracy" and score is not None \
        else _number(score)  # fmt: skip
    version = data["dataset_version"]
    lines = [
        f"# {card['name']}",
        "",
        f"{card['run']['label'] or 'A training run'}, started {card['run']['created_at']} and "
        f"{card['run']['status']}; weights saved {card['weights_saved_at']}, exported by "
        f"cnnviz {card['cnnviz_version']}.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {model['architecture']} |",
        f"| activation | {model['activation'] or 'as published'} |",
        f"| batch norm | {model['batch_norm']} |",
        f"| dropout | {model['dropout']} |",
        f"| channels per convolution | {model['width'] or 'as published'} |",
        *([f"| started from | {_start(model['init_from'])} |"] if model["init_from"] else []),
        "",
        "## Data",
        "",
        f"- dataset: {data['dataset']}"
        + (
            f" (id {data['dataset_id']}, version {version})" if data["dataset_id"] else ""
        ),  # fmt: skip
        f"- classes ({len(data['classes'])}): {', '.join(data['classes'])}",
        f"- {data['train_size']} training and {data['val_size']} held-out images "
        f"(split seed {data['seed']})",
        f"- input: {'×'.join(map(str, inp['shape']))}, values scaled to [0, 1], then "
        "(x − mean) / std per channel "
        f"with mean {inp['mean']} and std {inp['std']}",
        "",
        "## Metrics",
        "",
        f"Held-out {metrics['metric']} of these weights: **{shown}** after "
        f"{metrics['epochs_trained']} epochs.",
        "",
        "| " + " | ".join(_EPOCH_COLUMNS) + " |",
        "|" + "---|" * len(_EPOCH_COLUMNS),
        *(
            "| " + " | ".join(_number(row[k]) for k in _EPOCH_COLUMNS) + " |"
            for row in metrics["epochs"]
        ),  # fmt: skip
        "",
        "## Files",
        "",
        f"- `{files['safetensors']}` — the weights (sha256 `{files['weights_sha256']}`)",
        *(
            [
                f"- `{files['py']}` — the architecture in plain PyTorch; "
                f"`python {files['py']} --json` prints the logits of a fixed-seed input"
            ]
            if files.get("py")
            else []
        ),  # fmt: skip
        f"- `{files['onnx']}` — ONNX, opset {files['onnx_opset']}, input `input` "
        f"1×{'×'.join(map(str, inp['shape']))}, output `logits`",
        "",
        "## Training config",
        "",
        "```json",
        json.dumps(card["config"], indent=2, ensure_ascii=False),
        "```",
        "",
        "## Intended use",
        "",
        card["intended_use"][0].upper() + card["intended_use"][1:] + ".",
        "",
    ]
    return "\n".join(lines)
