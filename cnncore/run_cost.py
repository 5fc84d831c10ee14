"""What a training run will hold in memory and how much arithmetic it will do, before it starts.

A run's memory is the product of its sizes (images × pixels × channels, batch × activations,
parameters × optimiser slots), so each limit checked alone lets a few modest numbers ask for
gigabytes: resnet18 at 256×256 with a batch of 1024 keeps ~28 MB of activations per image for
the backward pass, ~29 GB for one step. `estimate_run` adds the parts up from shapes only:

- data: the images as loaded, then twice at the trained size (the training/validation split,
  and the normalised copy the loop reads; `cnncore.training.Trainer._prepare_tensors`);
- state: parameters, their gradients, the optimiser's slots per parameter (momentum buffer,
  Adam's two moments; Kingma & Ba 2015, Algorithm 1) and, with early stopping, a copy of the
  best weights;
- the training step: every tensor autograd saves for the backward pass, counted by storage
  with `torch.autograd.graph.saved_tensors_hooks` during one forward pass on the meta device
  (shapes, no memory), at batch 1 and 2 to split what grows with the batch from what does not;
  plus the backward's working memory, two of the largest layer output;
- evaluation (not at the same time as a step): two of the largest layer output per image of an
  evaluation batch, without gradients.

The work is multiply-adds: one forward pass per image is `cnncore.inspect.summarize`'s MACs;
a training step costs about three forward passes (the backward computes gradients for both the
inputs and the weights of each layer: two more products of the same size), and each epoch ends
with one forward pass over the validation images.

The estimate is checked against peaks measured in a real process (tests/cnncore/
test_run_cost.py; figures in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from cnncore.errors import CNNCoreError
from cnncore.inspect import summarize
from cnncore.model_options import build_classifier

__all__ = [
    "EVAL_BATCH",
    "OPTIMIZER_SLOTS",
    "ModelFootprint",
    "RunCost",
    "available_memory",
    "estimate_run",
    "model_footprint",
]

FLOAT_BYTES = 4  # every tensor of a run is float32
EVAL_BATCH = 512  # cnncore.training's evaluation batch
BACKWARD_FACTOR = 3  # a training step ≈ three forward passes of multiply-adds
# Buffers kept per parameter by each optimiser (torch.optim's state): SGD none, the momentum
# buffer, RMSProp's square average (and a momentum buffer when momentum > 0), Adam's two moments.
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class ModelFootprint:
    """A network's sizes at one input shape, from one forward pass on the meta device."""

    parameters: int
    largest_parameter_bytes: int  # the largest weight tensor
    saved_fixed_bytes: int  # saved for backward whatever the batch (batch-norm statistics …)
    saved_bytes_per_image: int  # saved for backward, per image of the batch
    largest_output_bytes: int  # the largest layer output, per image
    workspace_bytes: int  # the largest unfolded input of a convolution (im2col), per image
    macs_per_image: int  # multiply-adds of one forward pass


@dataclass(frozen=True)
class RunCost:
    """A run's estimated peak memory (bytes) and work (multiply-adds), by part."""

    data_bytes: int
    state_bytes: int
    step_bytes: int  # activations saved for backward + backward working memory, one batch
    eval_bytes: int
    peak_bytes: int
    parameters: int
    steps: int  # optimisation steps of the whole run
    macs: int  # multiply-adds of the whole run (training and evaluation)
    source_bytes: int = 0  # building the transfer source (an uploaded file converted again)

    def ctx(self) -> dict[str, int | float]:
        """The figures a refusal carries (bytes and GB for people, MACs in 10⁹)."""
        return {
            "peak_gb": round(self.peak_bytes / 1e9, 2),
            "data_gb": round(self.data_bytes / 1e9, 2),
            "step_gb": round(self.step_bytes / 1e9, 2),
            "steps": self.steps,
            "gmacs": round(self.macs / 1e9),
        }


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata  # one StorageImpl per storage, meta ones too


def _saved_bytes(net: torch.nn.Module, channels: int, side: int, batch: int) -> int:
    """Bytes autograd keeps for the backward pass of one forward at `batch` (parameters not
    counted: they are state), on the meta device."""
    parameters = {_storage_key(p) for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in parameters:
            saved[key] = max(saved.get(key, 0), tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(torch.zeros(batch, channels, side, side, device="meta"))
    return sum(saved.values())


@lru_cache(maxsize=128)
def model_footprint(
    model: str, channels: int, side: int, num_classes: int, activation: str | None = None,
    batch_norm: bool = False, dropout: float = 0.0, width: int | None = None,
) -> ModelFootprint:  # fmt: skip
    """The sizes of `model` (with a run's switches) on channels×side×side images."""
    with torch.device("meta"):
        net = build_classifier(model, (channels, side, side), num_classes, activation=activation,
                               batch_norm=batch_norm, dropout=dropout,
                               width=width).train()  # fmt: skip
        # Batches 2 and 3: batch norm refuses to train on one value per channel.
        two, three = (_saved_bytes(net, channels, side, b) for b in (2, 3))
        summary = summarize(net, (channels, side, side))
    largest = max(math.prod(row.output_shape) for row in summary.layers if row.output_shape)
    # CPU convolutions unfold their input into columns (im2col): C/groups · kh · kw values per
    # output position, alive in the forward and again in the backward pass.
    unfolded = [row.input_shape[0] // (row.groups or 1) * math.prod(row.kernel_size)
                * math.prod(row.output_shape[1:]) for row in summary.layers
                if row.groups is not None and row.output_shape]  # fmt: skip
    per_image = max(0, three - two)
    return ModelFootprint(
        parameters=sum(p.numel() for p in net.parameters()),
        largest_parameter_bytes=max((p.numel() for p in net.parameters()), default=0) * FLOAT_BYTES,
        saved_fixed_bytes=max(0, two - 2 * per_image), saved_bytes_per_image=per_image,
        largest_output_bytes=largest * FLOAT_BYTES,
        workspace_bytes=max(unfolded, default=0) * FLOAT_BYTES, macs_per_image=summary.total_macs,
    )  # fmt: skip


def estimate_run(
    footprint: ModelFootprint, *, optimizer: str, momentum: float, early_stopping: bool,
    batch_size: int, epochs: int, steps_per_epoch: int, train_images: int, val_images: int,
    channels: int, side: int, loaded_bytes: int, source_bytes: int = 0,
) -> RunCost:  # fmt: skip
    """Peak memory and work of a run whose network has `footprint` (see the module docstring).
    `loaded_bytes` is what the dataset holds as loaded, before any resizing; `source_bytes`
    what building the transfer source takes besides (an uploaded ONNX file converted again in
    the worker), counted on top: what it frees stays in the process's heap."""
    image_bytes = channels * side * side * FLOAT_BYTES
    data = loaded_bytes + 2 * (train_images + val_images) * image_bytes
    slots = OPTIMIZER_SLOTS.get(optimizer, 2) + (optimizer == "rmsprop" and momentum > 0)
    copies = 2 + slots + int(early_stopping)  # weights, gradients, slots, best weights
    # The optimiser's step works one tensor at a time (foreach=False) with up to two temporaries
    # the size of that tensor (Adam's denominator and update).
    state = footprint.parameters * FLOAT_BYTES * copies + 2 * footprint.largest_parameter_bytes
    batch = min(batch_size, train_images)
    step = (footprint.saved_fixed_bytes + footprint.saved_bytes_per_image * batch
            + (2 * footprint.largest_output_bytes + footprint.workspace_bytes) * batch)  # fmt: skip
    evaluation = 2 * footprint.largest_output_bytes * min(EVAL_BATCH, max(1, val_images))
    steps = steps_per_epoch * epochs
    macs = footprint.macs_per_image * (BACKWARD_FACTOR * batch * steps + val_images * epochs)
    peak = data + state + max(step, evaluation) + source_bytes
    return RunCost(data, state, step, evaluation, peak, footprint.parameters, steps, macs,
                   source_bytes)  # fmt: skip


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes a new run can still take on `device`: the free memory of a GPU, or the memory the
    kernel says is available without swapping (Linux `MemAvailable`; else free pages)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        raise CNNCoreError(f"no memory figure for device {device}", "device")
    found = _meminfo_available()
    if found is not None:
        return found
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
