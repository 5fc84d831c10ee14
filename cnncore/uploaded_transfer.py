"""An uploaded ONNX model as a transfer-learning source: its layers up to the classifier head
become a run's backbone, a new head takes the dataset's classes.

The converted model (`cnncore.onnx_import`: a torch.fx GraphModule) is a classifier when its
output is made by a fully connected layer (ONNX Gemm, or MatMul by a constant: `nn.Linear` once
converted; a MatMul then an Add of a constant bias, as tf2onnx writes a Keras Dense layer, is
taken as one), possibly followed by what does not change which class wins — a Softmax or
LogSoftmax, a Flatten, a Dropout or Identity (already gone at import). That layer is found from
the graph, walking back from the output (`classifier_head`), never guessed from module order.
`as_classifier` makes the network a run trains: the head's output is the graph's output (a
softmax after it goes: cross-entropy takes logits), and a head for another number of classes is
a fresh `nn.Linear` (PyTorch's default initialisation; `cnncore.transfer.transfer_model` draws
it again from the run's seed). A model whose output is not made that way is refused, naming
`init_from.model`.

The run's network keeps the file's weights and layer names, so its checkpoints load back onto
the same classifier form (`cnncore.model_options.build_classifier` builds it for an uploaded
name) and `freeze`/`freeze_backbone` name its layers as the summary shows them.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from cnncore.errors import CNNCoreError

__all__ = ["FIELD", "as_classifier", "classifier_head"]

FIELD = "init_from.model"
# Modules between the head and the output that leave its argmax where it is.
_AFTER_HEAD = (nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Identity, nn.Dropout)


def _refuse(why: str) -> CNNCoreError:
    return CNNCoreError(
        f"this model has no recognisable classifier head ({why}): a transfer run replaces the "
        "fully connected layer (Gemm) that makes its output",
        FIELD,
        code="no_output_layer",
    )


def _output_node(graph: fx.Graph) -> fx.Node:
    return next(node for node in graph.nodes if node.op == "output")


def _bias_of(model: fx.GraphModule, node: fx.Node) -> tuple[fx.Node, torch.Tensor] | None:
    """(the Linear node, the bias) when `node` adds a constant bias to a Linear's output without
    one: a Keras Dense layer as tf2onnx writes it (MatMul, then Add)."""
    if node.op != "call_function" or node.target is not operator.add or len(node.args) != 2:
        return None
    for linear, bias in (node.args, node.args[::-1]):
        if not (isinstance(linear, fx.Node) and isinstance(bias, fx.Node)):
            continue
        if linear.op != "call_module" or bias.op != "get_attr" or len(linear.users) != 1:
            continue
        module, value = model.get_submodule(str(linear.target)), _attribute(model, bias.target)
        if (
            isinstance(module, nn.Linear)
            and module.bias is None
            and value.numel() == (module.out_features)
        ):
            return linear, value.reshape(module.out_features)
    return None


def _attribute(model: nn.Module, target) -> torch.Tensor:
    owner, _, name = str(target).rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, name)


def _head_node(model: fx.GraphModule) -> fx.Node:
    found = _output_node(model.graph).args[0]
    while True:
        if isinstance(found, fx.Node) and _bias_of(model, found) is not None:
            return found
        if not isinstance(found, fx.Node) or found.op != "call_module":
            raise _refuse("its output is not made by a layer")
        module = model.get_submodule(str(found.target))
        if isinstance(module, nn.Linear):
            return found
        if not isinstance(module, _AFTER_HEAD) or len(found.all_input_nodes) != 1:
            raise _refuse(f"its output is made by {type(module).__name__}")
        found = found.all_input_nodes[0]


def classifier_head(model: nn.Module) -> str:
    """The dotted name of the fully connected layer that makes a converted model's output."""
    if not isinstance(model, fx.GraphModule):
        raise _refuse("it is not a converted graph")
    head = _head_node(model)
    with_bias = _bias_of(model, head)
    return str((with_bias[0] if with_bias else head).target)


def as_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """`model` (changed in place) ending at its head, with a head of `num_classes` outputs.
    A zoo architecture with uploaded weights (not a graph) ends at its last `nn.Linear`."""
    if isinstance(model, fx.GraphModule):
        head = _head_node(model)
        with_bias = _bias_of(model, head)
        if with_bias is not None:  # the Add's bias becomes the Linear's own: one head layer
            linear, bias = with_bias
            model.get_submodule(str(linear.target)).bias = nn.Parameter(bias.clone())
            head = linear
        _output_node(model.graph).args = (head,)
        model.graph.eliminate_dead_code()
        model.delete_all_unused_submodules()
        model.recompile()
        name = str(head.target)
    else:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise _refuse("it has no fully connected layer")
        name = linears[-1]
    linear = model.get_submodule(name)
    if linear.out_features != num_classes:
        parent, _, child = name.rpartition(".")
        fresh = nn.Linear(linear.in_features, num_classes, bias=linear.bias is not None,
                          device=linear.weight.device)  # fmt: skip
        setattr(model.get_submodule(parent) if parent else model, child, fresh)
    return model
