"""Transfer learning: start a run from another run's checkpoint, freeze layers, new head.

Yosinski et al. (2014), "How transferable are features in deep neural networks?": the first
layers of a network trained on one task learn general features (edges, blobs) that another task
can reuse; copying them and training only the top layers works with far fewer examples than
training from scratch. Here:

- the new run keeps the source's architecture (model, activation, batch norm, dropout), so every
  saved weight has a place to go, and its images are resized to the source's input size;
- `replace_head` swaps the output layer (the last `nn.Linear`) for a fresh one with the new
  number of classes (the "new head" of Yosinski et al.'s transfer networks);
- `freeze` names layer prefixes (`features`, `features.0`, …, dotted module paths as
  everywhere in cnnviz) whose parameters stop learning (`requires_grad = False`: autograd
  gives them no gradient, so no optimiser moves them, weight decay included); a frozen batch
  norm layer also keeps the running statistics it learnt on the source task and normalises with
  them while the rest trains (it runs in inference mode, as Keras does for a `BatchNormalization`
  layer with `trainable = False`): otherwise every training batch of the new task would move
  its running mean and variance, and the "frozen" layer would compute something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import fx, nn

from cnncore.checkpoint import Checkpoint, read_checkpoint_info
from cnncore.data import DataSplit, resize_split
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier
from cnncore.seeding import seeded
from cnncore.training import TrainConfig
from cnncore.uploaded_transfer import classifier_head

__all__ = [
    "TransferPlan",
    "backbone_layers",
    "checkpoint_layers",
    "freeze_layers",
    "hold_statistics",
    "output_layer",
    "plan_transfer",
    "plan_transfer_from",
    "transfer_data",
    "transfer_model",
]

ARCHITECTURE_FIELDS = ("model", "activation", "batch_norm", "dropout", "width")


@dataclass(frozen=True)
class TransferPlan:
    """A checked transfer: the run's config (architecture taken from the source), what the
    source network was, and which of its layers exist to be frozen."""

    config: TrainConfig
    input_shape: tuple[int, int, int]
    source_classes: int
    layers: list[str]  # dotted names of the source's weighted layers, in model order
    head: str  # dotted name of the output layer
    freeze: list[str] = field(default_factory=list)  # the prefixes the run freezes
    source_field: str = "init_from.run_id"  # what a refusal about the source names


def output_layer(model: nn.Module) -> str:
    """The dotted name of the classifier head: the model's last fully connected layer (in a
    converted ONNX graph, the one that makes its output: `cnncore.uploaded_transfer`)."""
    if isinstance(model, fx.GraphModule):
        return classifier_head(model)
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise CNNCoreError(
            "this model has no fully connected output layer", "init_from", code="no_output_layer"
        )
    return linears[-1]


def _matching(names: list[str], prefix: str) -> list[str]:
    return [name for name in names if name == prefix or name.startswith(prefix + ".")]


def freeze_layers(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Stop the parameters under each prefix from learning; returns their names.

    A prefix matches a parameter on a dotted boundary (`features.1` freezes `features.1.weight`
    but not `features.10.weight`); one that matches nothing is refused, naming the field."""
    names = [name for name, _ in model.named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        found = _matching(names, prefix)
        if not found:
            layers = sorted({n.rsplit(".", 1)[0] for n in names})
            raise CNNCoreError(
                f"no layer is called {prefix!r}; the layers are {', '.join(layers)}",
                "init_from.freeze",
                code="unknown_layer",
                ctx={"expected": layers},  # the model's names only: never what was sent
            )
        frozen.extend(n for n in found if n not in frozen)
    parameters = dict(model.named_parameters())
    for name in frozen:
        parameters[name].requires_grad_(False)
    return frozen


def _use_learnt_statistics(module: nn.Module, _inputs: tuple) -> None:
    # Forward pre-hook: whatever `model.train()` set, normalise with the running statistics
    # and leave them as they are (only training mode updates them).
    module.train(False)


def hold_statistics(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Keep the batch norm layers under the frozen prefixes in inference mode; their names."""
    held = []
    for name, module in model.named_modules():
        frozen = any(_matching([name], prefix) for prefix in prefixes)
        if frozen and isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            module.register_forward_pre_hook(_use_learnt_statistics)
            held.append(name)
    return held


def _build(config: TrainConfig, input_shape: tuple[int, int, int], classes: int) -> nn.Module:
    return build_classifier(
        config.model, input_shape, classes, activation=config.activation,
        batch_norm=config.batch_norm, dropout=config.dropout, width=config.width,
    )  # fmt: skip


def _meta_network(config: TrainConfig, trained) -> nn.Module:
    # Built on the meta device: names and shapes only, no memory, microseconds.
    with torch.device("meta"):
        return _build(config, trained.input_shape, len(trained.labels))


def _weighted(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def checkpoint_layers(checkpoint_path) -> tuple[list[str], str]:
    """The weighted layers of a checkpoint's network (what `freeze` may name) and its head,
    read from the metadata alone."""
    source, trained, _ = read_checkpoint_info(checkpoint_path)
    model = _meta_network(source, trained)
    return _weighted(model), output_layer(model)


def backbone_layers(model: nn.Module, head: str) -> list[str]:
    """Every module holding parameters of its own outside the head, in model order: what
    "freeze the backbone" freezes (batch norm layers included, so they keep their statistics)."""
    return [
        name for name, module in model.named_modules()
        if name and any(True for _ in module.parameters(recurse=False))
        and not _matching([name], head)
    ]  # fmt: skip


def plan_transfer(
    checkpoint_path, config: TrainConfig, freeze: list[str], replace_head: bool,
    freeze_backbone: bool = False,
) -> TransferPlan:  # fmt: skip
    """Check a transfer before any data is loaded (the API answers 422 at once): the source
    is a readable checkpoint, every frozen prefix names a layer, the head is not frozen
    while being replaced."""
    source, trained, _ = read_checkpoint_info(checkpoint_path)
    return plan_transfer_from(source, trained, config, freeze, replace_head, freeze_backbone)


def plan_transfer_from(
    source: TrainConfig, trained, config: TrainConfig, freeze: list[str], replace_head: bool,
    freeze_backbone: bool = False, source_field: str = "init_from.run_id",
) -> TransferPlan:  # fmt: skip
    """`plan_transfer` for any source: its architecture config and `TrainedMetadata` (a run's
    checkpoint, or `cnncore.transfer_sources` for bundled and ImageNet weights). With
    `freeze_backbone` every layer but the head is frozen (`TransferPlan.freeze`)."""
    arch = {name: getattr(source, name) for name in ARCHITECTURE_FIELDS}
    planned = replace(config, **arch)
    planned.check()
    model = _meta_network(planned, trained)
    head = output_layer(model)
    if freeze_backbone:
        freeze = [*freeze, *(n for n in backbone_layers(model, head) if n not in freeze)]
    frozen = freeze_layers(model, freeze)
    if replace_head and any(_matching([n], head) for n in frozen):
        raise CNNCoreError(
            f"the new head ({head}) would be frozen: it could never learn",
            "init_from.freeze",
            code="new_head_frozen",
            ctx={"layer": head},
        )
    return TransferPlan(planned, trained.input_shape, len(trained.labels), _weighted(model), head,
                        list(freeze), source_field)  # fmt: skip


def transfer_data(
    data: DataSplit, input_shape: tuple[int, int, int], fit: str,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataSplit:  # fmt: skip
    """The new task's images at the source network's input size (channels must agree). With
    `normalisation` (the source's mean and std), images are normalised as the source's were:
    a trained first layer expects its own input statistics (torchvision's ImageNet recipe)."""
    data = _transfer_size(data, input_shape, fit)
    if normalisation is None:
        return data
    mean, std = normalisation
    return replace(data, mean=[float(v) for v in mean], std=[float(v) for v in std])


def _transfer_size(data: DataSplit, input_shape: tuple[int, int, int], fit: str) -> DataSplit:
    channels, height, width = input_shape
    if data.input_shape[0] != channels:
        raise CNNCoreError(
            f"the source network reads {channels}-channel images; this dataset has "
            f"{data.input_shape[0]} (set data.channels)",
            "data.channels",
            code="source_channels_mismatch",
            ctx={"channels": data.input_shape[0], "expected": channels},
        )
    if data.input_shape[1:] == (height, width):
        return data
    if height != width:
        raise CNNCoreError(
            "the source network's input is not square",
            "init_from",
            code="source_input_not_square",
            ctx={"height": height, "width": width},
        )
    return resize_split(data, height, fit)


def transfer_model(
    checkpoint: Checkpoint,
    num_classes: int,
    *,
    freeze: list[str],
    replace_head: bool,
    seed: int = 0,
) -> nn.Module:
    """The source network with its trained weights, a new head when asked, layers frozen.

    Without `replace_head` the old head is kept, which only fits a task with the same number
    of classes. The new head starts from PyTorch's default initialisation drawn from `seed`."""
    model = checkpoint.model.train()
    head_name = output_layer(model)
    head = model.get_submodule(head_name)
    if replace_head:
        parent_name, _, child = head_name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        with seeded(seed):
            new_head = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
        setattr(parent, child, new_head.to(head.weight.device))
    elif head.out_features != num_classes:
        raise CNNCoreError(
            f"the source network predicts {head.out_features} classes and this task has "
            f"{num_classes}: replace the head",
            "init_from.replace_head",
            code="head_classes_mismatch",
            ctx={"classes": num_classes, "expected": head.out_features},
        )
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    freeze_layers(model, freeze)
    hold_statistics(model, freeze)
    return model
