"""ONNX tensors read into torch, after their declared size has been checked against the budget.

Only the tensor's own bytes are read (`raw_data` or the typed lists); a tensor stored as external
data (a file beside the model, or any path it names) is refused, never opened. Floating tensors
become float32, the precision every cnnviz computation runs at.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from onnx import TensorProto

from cnncore.errors import CNNCoreError

__all__ = ["declared_elements", "read_tensor", "torch_dtype"]

# ONNX data type → (numpy dtype of raw_data, typed field holding the values otherwise)
_TYPES: dict[int, tuple[np.dtype, str]] = {
    TensorProto.FLOAT: (np.dtype("<f4"), "float_data"),
    TensorProto.DOUBLE: (np.dtype("<f8"), "double_data"),
    TensorProto.FLOAT16: (np.dtype("<f2"), "int32_data"),
    TensorProto.INT64: (np.dtype("<i8"), "int64_data"),
    TensorProto.INT32: (np.dtype("<i4"), "int32_data"),
    TensorProto.INT16: (np.dtype("<i2"), "int32_data"),
    TensorProto.INT8: (np.dtype("i1"), "int32_data"),
    TensorProto.UINT8: (np.dtype("u1"), "int32_data"),
    TensorProto.BOOL: (np.dtype("?"), "int32_data"),
}
_TORCH = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float32,
    TensorProto.FLOAT16: torch.float32,
    TensorProto.INT64: torch.int64,
    TensorProto.INT32: torch.int64,
    TensorProto.INT16: torch.int64,
    TensorProto.INT8: torch.int64,
    TensorProto.UINT8: torch.int64,
    TensorProto.BOOL: torch.bool,
}


def _invalid(message: str, where: str) -> CNNCoreError:
    return CNNCoreError(message, "model", code="onnx_invalid", ctx={"layer": where[:64]})


def torch_dtype(onnx_type: int, where: str) -> torch.dtype:
    """The torch dtype cnnviz computes an ONNX type in (float32 for every floating type)."""
    if onnx_type not in _TORCH:
        known = onnx_type in TensorProto.DataType.values()
        name = TensorProto.DataType.Name(onnx_type) if known else None
        raise CNNCoreError(
            f"{where}: data type {name or onnx_type} is not supported",
            "model",
            code="onnx_data_type",
            ctx={"layer": where[:64], "model": str(name or onnx_type)[:64]},
        )
    return _TORCH[onnx_type]


def is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def declared_elements(tensor: TensorProto) -> int:
    """How many values the tensor's dims declare (an exact Python int: nothing is allocated)."""
    if any(d < 0 for d in tensor.dims):
        raise _invalid(f"tensor {tensor.name!r} has a negative dimension", tensor.name)
    return math.prod(tensor.dims)


def read_tensor(tensor: TensorProto, where: str) -> torch.Tensor:
    """The tensor's values; its size must already be within the caller's budget."""
    if is_external(tensor):
        raise CNNCoreError(
            f"{where}: tensor {tensor.name!r} is stored in an external file; "
            "upload a model with its weights inside the .onnx file",
            "model",
            code="onnx_external_data",
            ctx={"layer": where[:64]},
        )
    dtype = torch_dtype(tensor.data_type, where)
    numpy_type, field = _TYPES[tensor.data_type]
    count = declared_elements(tensor)
    if tensor.raw_data:
        if len(tensor.raw_data) != count * numpy_type.itemsize:
            raise _invalid(
                f"tensor {tensor.name!r} declares {count} values but holds "
                f"{len(tensor.raw_data)} bytes",
                where,
            )
        array = np.frombuffer(tensor.raw_data, dtype=numpy_type)
    else:
        values = getattr(tensor, field)
        if len(values) != count:
            raise _invalid(
                f"tensor {tensor.name!r} declares {count} values but holds {len(values)}", where
            )
        if tensor.data_type == TensorProto.FLOAT16:  # bit patterns in int32_data
            array = np.asarray(values, dtype=np.uint16).view(np.float16)
        else:
            array = np.asarray(values, dtype=numpy_type)
    array = array.astype(np.float32 if dtype == torch.float32 else array.dtype, copy=True)
    result = torch.from_numpy(array.reshape(tuple(tensor.dims)))
    return result.to(dtype)
