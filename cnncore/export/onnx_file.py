"""A trained network as an ONNX file, written by PyTorch's own exporter.

`torch.onnx.export(..., dynamo=True)`: the torch.export-based exporter (onnxscript), PyTorch's
default since 2.9 — the TorchScript one (`dynamo=False`) still runs in torch 2.13 but warns that
it will be removed. The graph is exported at ONNX opset `OPSET` for a fixed input of one image
(1×C×H×W, named `input`; output `logits`): a fixed shape is what every importer takes, and the
exporter's optimiser folds each eval-mode batch norm into the conv before it, so the file holds
one conv where the run has a conv and its batch norm (same numbers, to float rounding).

The file states what it is in its `metadata_props` (opset, input shape and normalisation,
classes, the run, the weights' sha256) and passes `onnx.checker.check_model`.
"""

from __future__ import annotations

import threading
import time
import warnings

import onnx
import torch
from torch import nn

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "onnx_bytes"]

OPSET = 18  # the lowest opset the torch.export-based exporter writes natively
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

# torch.export traces through global state (fake tensor modes, the dispatcher): one at a time.
_EXPORTING = threading.Lock()
# CPython 3.11's ast module keeps the depth of the AST it is converting in one state shared by
# every thread, so `ast.parse` in another thread at the same moment (onnxscript parses hundreds
# of torchlib functions' sources during an export) can raise a spurious SystemError. Seen in full
# test runs, twice in a row once, never alone: the export, which has no side effect, is tried
# again after a growing pause (0.2, 0.4, 0.8, 1.6 s) so that the other thread's parsing can end.
_SPURIOUS_AST = "AST constructor recursion depth mismatch"
_ATTEMPTS = 5
_FIRST_PAUSE_S = 0.2


def onnx_bytes(
    model: nn.Module, input_shape: tuple[int, int, int], metadata: dict[str, str]
) -> bytes:
    """The serialised ModelProto of `model` (in eval mode, on the CPU) for 1×C×H×W inputs."""
    example = torch.zeros(1, *input_shape)
    with _EXPORTING, warnings.catch_warnings():
        # torch's own pytree code warns about its own deprecated LeafSpec while exporting
        warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
        for attempt in range(_ATTEMPTS):
            try:
                program = torch.onnx.export(
                    model.eval(), (example,), dynamo=True, opset_version=OPSET,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
                )  # fmt: skip
                break
            except SystemError as exc:
                if _SPURIOUS_AST not in str(exc) or attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(_FIRST_PAUSE_S * 2**attempt)
    proto = program.model_proto
    proto.producer_name = "cnnviz"
    for key, value in {"opset": str(OPSET), **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
