"""What the ONNX importer refuses, with which code and numbers, before allocating anything the
file only declares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper
from onnx_hostile import (
    cycle,
    declared_huge,
    declared_tensor,
    dynamic_image,
    external_system_file,
    hostile_corpus,
    image_input,
    many_nodes,
    small_model,
    unknown_domain,
    unsupported,
)

from cnncore.errors import CNNCoreError
from cnncore.onnx_import import OnnxLimits, import_onnx


def refusal(data: bytes, limits: OnnxLimits | None = None) -> CNNCoreError:
    with pytest.raises(CNNCoreError) as caught:
        import_onnx(data, limits)
    assert caught.value.field == "model"
    return caught.value


def test_the_small_model_itself_imports_and_computes_conv_relu():
    imported = import_onnx(small_model())
    x = torch.randn(3, 1, 8, 8)
    expected = torch.relu(torch.nn.functional.conv2d(x, torch.ones(2, 1, 3, 3)))
    torch.testing.assert_close(imported.module(x), expected, rtol=1e-6, atol=1e-6)
    assert imported.output_shape == (2, 6, 6) and imported.parameters == 18


@pytest.mark.parametrize("name", sorted(hostile_corpus(small_model())))
def test_hostile_corpus(name):
    data, codes = hostile_corpus(small_model())[name]
    assert refusal(data).code in codes


def test_unsupported_operators_are_all_named_with_their_nodes():
    error = refusal(unsupported())
    assert error.code == "onnx_unsupported_operators"
    assert error.ctx["operators"] == ["NonZero (where_nonzero)", "Einsum (contract)"]
    assert "Einsum, NonZero" in str(error) and error.ctx["count"] == 2


def test_declared_sizes_are_counted_not_allocated():
    error = refusal(declared_huge())
    assert error.ctx == {"count": 2**29, "limit": OnnxLimits().max_parameters}


def test_external_data_is_never_opened():
    error = refusal(external_system_file())
    assert "external" in str(error) and "root:" not in str(error)


def test_a_cycle_is_refused():
    assert "sorted" in str(refusal(cycle())).lower() or refusal(cycle()).code == "onnx_graph_order"


def test_node_count_and_limits_are_settings():
    assert refusal(many_nodes(51), OnnxLimits(max_nodes=50)).ctx == {"count": 51, "limit": 50}
    import_onnx(many_nodes(50), OnnxLimits(max_nodes=50))
    error = refusal(small_model(), OnnxLimits(max_bytes=100))
    assert error.code == "onnx_too_large" and error.ctx["limit"] == 100
    error = refusal(small_model(), OnnxLimits(max_parameters=17))
    assert error.code == "onnx_too_many_parameters" and error.ctx["count"] == 18
    error = refusal(small_model(), OnnxLimits(max_input_pixels=63))
    assert error.code == "onnx_input_too_large" and error.ctx["pixels"] == 64


def test_dynamic_and_wrong_inputs():
    error = refusal(dynamic_image())
    assert error.ctx == {"input_name": "x", "dimension": 2}
    two = small_model(inputs=[image_input(), image_input(("N", 1, 4, 4))])
    assert refusal(two).code in ("onnx_inputs", "onnx_invalid")
    flat = small_model(inputs=[image_input(("N", 64))])
    assert refusal(flat).code == "onnx_inputs"
    batch4 = small_model(inputs=[image_input((4, 1, 8, 8))])
    assert refusal(batch4).ctx == {"input_name": "x", "dimension": 0}


def test_custom_domains_and_unknown_opsets():
    assert refusal(unknown_domain()).ctx == {"domain": "com.example.evil"}
    assert refusal(small_model(opset=6)).code in ("onnx_opset", "onnx_invalid")


def test_a_tensor_holding_fewer_bytes_than_it_declares():
    short = declared_tensor("w", [2, 1, 3, 3])
    short.raw_data = b"\0" * 8
    error = refusal(small_model(initializers=[short]))
    assert error.code == "onnx_invalid"


def test_a_computed_weight_is_refused_naming_the_node():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Conv", ["x", "r"], ["y"], name="conv_by_data"),
    ]
    error = refusal(small_model(nodes, initializers=[]))
    assert error.code == "onnx_operator_form" and error.ctx["layer"] == "conv_by_data"


def test_a_constant_of_huge_shape_is_refused():
    shape = numpy_helper.from_array(np.array([2**20, 2**20], np.int64), "s")
    nodes = [
        helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill"),
        helper.make_node("Add", ["x", "big"], ["y"], name="add"),
    ]
    assert refusal(small_model(nodes, initializers=[shape])).code == "onnx_operator_form"
