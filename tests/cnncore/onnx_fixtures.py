"""ONNX files made in the test run (no binary fixture is committed): torch.onnx's exporter on
zoo models and small models, and hand-written graphs for what no exporter writes."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    opset: int = 17,
    free_batch: bool = True,
    keep_batch_norm: bool = False,
) -> bytes:
    """The model (eval mode) exported by torch's TorchScript-based exporter at batch 1.

    `keep_batch_norm` exports BatchNormalization nodes instead of folding them into the convs
    (torch folds them by default in eval mode)."""
    model = model.eval()
    buffer = io.BytesIO()
    options = {"dynamic_axes": {"input": {0: "batch"}}} if free_batch else {}
    if keep_batch_norm:
        options.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            model, (torch.zeros(1, *input_shape),), buffer, dynamo=False, opset_version=opset,
            input_names=["input"], output_names=["output"], **options,
        )  # fmt: skip
    return buffer.getvalue()
