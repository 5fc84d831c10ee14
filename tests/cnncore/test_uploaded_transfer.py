"""An uploaded ONNX model made a classifier to train (cnncore.uploaded_transfer): the head found
from the graph whatever follows it (a softmax goes: the run trains on logits), a Keras-style
MatMul + Add head taken as one layer, a new head for another number of classes, and a model
whose output no fully connected layer makes refused naming init_from.model — each against the
torch network the file was exported from."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.onnx_import import OnnxLimits, import_onnx
from cnncore.seeding import seeded
from cnncore.uploaded_transfer import as_classifier, classifier_head
from tests.cnncore.no_head import PooledScores


def exported(net: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, *shape),), buffer, dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    return import_onnx(buffer.getvalue(), OnnxLimits()).module


def backbone_and_head() -> tuple[nn.Module, nn.Module]:
    with seeded(4):
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
        head = nn.Linear(4 * 6 * 6, 5)
    return backbone, head


def relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    return float((found - expected).abs().max() / expected.abs().max())


X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_a_softmax_after_the_head_goes_and_the_head_is_kept_or_replaced():
    backbone, head = backbone_and_head()
    module = exported(nn.Sequential(backbone, head, nn.Softmax(1)), (3, 8, 8))
    name = classifier_head(module)
    assert isinstance(module.get_submodule(name), nn.Linear)
    with torch.no_grad():
        logits = head(backbone(X))
        kept = as_classifier(module, 5)(X)  # the same classes: the file's own head
    assert relative_error(kept, logits) <= 1e-5  # logits, not probabilities
    assert not any(isinstance(m, nn.Softmax) for m in module.modules())
    replaced = as_classifier(module, 2)
    assert classifier_head(replaced) == name
    assert replaced.get_submodule(name).weight.shape == (2, 4 * 6 * 6)
    with torch.no_grad():
        assert replaced(X).shape == (3, 2)
        conv = next(m for m in replaced.modules() if isinstance(m, nn.Conv2d))
        assert torch.equal(conv.weight, backbone[0].weight)  # the backbone is the file's


def keras_dense(weight: np.ndarray, bias: np.ndarray) -> bytes:
    """input → Flatten → MatMul(W) → Add(b) → Softmax: what tf2onnx writes for a Dense layer."""
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="model/flatten/Reshape"),
        helper.make_node("MatMul", ["flat", "W"], ["scores"], name="model/dense/MatMul"),
        helper.make_node("Add", ["scores", "b"], ["logits"], name="model/dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="model/dense/Softmax"),
    ]
    graph = helper.make_graph(
        nodes, "dense",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def test_a_matmul_and_add_head_is_one_layer():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((16, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    module = import_onnx(keras_dense(weight, bias), OnnxLimits()).module
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    expected = x.reshape(2, 16) @ torch.from_numpy(weight) + torch.from_numpy(bias)
    classifier = as_classifier(module, 3)
    head = classifier.get_submodule(classifier_head(classifier))
    assert torch.equal(head.bias.detach(), torch.from_numpy(bias))
    with torch.no_grad():
        assert relative_error(classifier(x), expected) <= 1e-6


def test_no_fully_connected_output_is_refused_naming_the_field():
    module = exported(PooledScores(), (3, 8, 8))
    with pytest.raises(CNNCoreError) as refused:
        as_classifier(module, 2)
    assert refused.value.field == "init_from.model" and refused.value.code == "no_output_layer"
    assert "classifier head" in str(refused.value)
