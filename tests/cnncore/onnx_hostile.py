"""A hostile corpus of ONNX files, written with onnx.helper in the test run: each entry is the
bytes and the refusal code the importer must answer with (before allocating what they declare)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def image_input(dims=("N", 1, 8, 8)):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))


def small_model(nodes=None, initializers=None, inputs=None, opset=17, domains=()) -> bytes:
    """x (N×1×8×8) → Conv 3×3 (2 filters) → Relu → y, or the given nodes (reading x, making y)."""
    weight = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    nodes = nodes if nodes is not None else [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", inputs or [image_input()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "c", "h", "w"])],
        initializer=[weight] if initializers is None else initializers,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def declared_huge() -> bytes:
    """An initializer declaring 2**29 float values (2 GiB) that holds none."""
    return small_model(initializers=[declared_tensor("w", [2**29, 1, 1, 1])])


def declared_tensor(name: str, dims: list[int]) -> TensorProto:
    """A float tensor with dims and no values (onnx.helper checks what a hostile file need not)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT)
    tensor.dims.extend(dims)
    return tensor


def external_system_file() -> bytes:
    """Weights said to live in /etc/passwd (and a relative path climbing out)."""
    weight = declared_tensor("w", [2, 1, 3, 3])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "72")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return small_model(initializers=[weight])


def cycle() -> bytes:
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Relu", ["b"], ["y"], name="third"),
    ]
    return small_model(nodes, initializers=[])


def many_nodes(count: int = 100_000) -> bytes:
    names = ["x"] + [f"v{i}" for i in range(count - 1)] + ["y"]
    nodes = [helper.make_node("Relu", [names[i]], [names[i + 1]]) for i in range(count)]
    return small_model(nodes, initializers=[])


def unknown_domain() -> bytes:
    nodes = [helper.make_node("Steal", ["x"], ["y"], name="evil", domain="com.example.evil")]
    return small_model(nodes, initializers=[], domains=["com.example.evil"])


def dynamic_image() -> bytes:
    return small_model(inputs=[image_input(("N", 1, "height", "width"))])


def unsupported() -> bytes:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("NonZero", ["r"], ["nz"], name="where_nonzero"),
        helper.make_node("Einsum", ["r", "r"], ["y"], name="contract", equation="ij,jk->ik"),
    ]
    return small_model(nodes, initializers=[])


@lru_cache(maxsize=2)
def hostile_corpus(valid: bytes) -> dict[str, tuple[bytes, set[str]]]:
    """name → (bytes, the refusal codes allowed); `valid` is a real model to truncate."""
    return {
        "truncated": (valid[: len(valid) // 2 + 7], {"onnx_unreadable", "onnx_invalid"}),
        "not_onnx": (b"\x80\x04\x95 pickle? no: nothing is ever unpickled", {"onnx_unreadable"}),
        "empty": (b"", {"onnx_unreadable"}),
        "declared_2gb": (declared_huge(), {"onnx_too_many_parameters"}),
        "external_data": (external_system_file(), {"onnx_external_data"}),
        "cycle": (cycle(), {"onnx_invalid", "onnx_graph_order"}),
        "100000_nodes": (many_nodes(), {"onnx_too_many_nodes"}),
        "unknown_domain": (unknown_domain(), {"onnx_custom_domain"}),
        "dynamic_shape": (dynamic_image(), {"onnx_dynamic_shape"}),
        "unsupported": (unsupported(), {"onnx_unsupported_operators"}),
    }
