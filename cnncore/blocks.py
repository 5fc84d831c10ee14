"""Block structure of a model: its container modules and where its paths fork and join.

A summary (`cnncore.inspect`) lists layers one after another; a diagram also needs to know that
`layer1.0.conv1 … bn2` and `layer1.0.downsample` run side by side on the same input and are added,
or that an Inception module's four branches are concatenated. That is read off the model's own
`torch.fx` graph (the same trace the feature maps and receptive fields use), not written per model:

- every container module (`layer1`, `layer1.0`, `inception3a.branch2`, ...) with its class name
  and output shape;
- every join: an addition (a residual shortcut, He et al. 2016 eq. 1; MobileNet v2's inverted
  residual, Sandler et al. 2018 §3.3) or a concatenation along channels (an Inception module,
  Szegedy et al. 2015 §4). Its block is the innermost module whose `forward` makes it; each of its
  inputs is one branch, whose layers are the block's layers that input depends on. Layers every
  branch depends on run before the fork, layers depending on the join run after it. A branch with
  no layer of its own (MobileNet v2's `x + conv(x)`) is the identity shortcut.

Shapes come from propagating a meta tensor through the graph (`torch.fx.passes.shape_prop`), so
nothing is allocated. A module whose `forward` joins more than once gets no `merge` (no model of
the zoo does; a diagram then draws its layers in sequence).
"""

from __future__ import annotations

import operator
from collections import deque
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from cnncore.errors import CNNCoreError
from cnncore.features import symbolic_trace

__all__ = ["Block", "Branch", "Merge", "model_blocks"]

Shape = tuple[int, ...]

# The graph operations that join paths: the residual `out + shortcut(x)` and Inception's `cat`.
_ADDITIONS = {operator.add, operator.iadd, torch.add, "add", "add_"}
_CONCATENATIONS = {torch.cat, torch.concat, torch.concatenate}


@dataclass(frozen=True)
class Branch:
    layers: tuple[str, ...]  # summary layer names on this path in execution order; () = identity
    output_shape: Shape


@dataclass(frozen=True)
class Merge:
    kind: str  # "add" | "concat"
    before: tuple[str, ...]  # the block's layers that run before the fork
    branches: tuple[Branch, ...]  # in the order the join takes its inputs
    after: tuple[str, ...]  # the block's layers that run on the joined map
    output_shape: Shape


@dataclass(frozen=True)
class Block:
    name: str  # dotted module path of a container module
    type: str  # its class name
    output_shape: Shape | None  # without the batch dimension; None if it did not run
    merge: Merge | None  # where its paths join, if its own forward joins them


def _merge_kind(node: fx.Node) -> str | None:
    if node.op not in ("call_function", "call_method") or len(node.all_input_nodes) < 2:
        return None
    if node.target in _ADDITIONS:
        return "add"
    if node.target in _CONCATENATIONS:
        return "concat"
    return None


def _scope(node: fx.Node) -> str:
    """Dotted path of the module a node belongs to: a layer's own path, or the module whose
    `forward` made an operation ('' at the top)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack.values()))[0]) if stack else ""


def _inside(scope: str, block: str) -> bool:
    return block == "" or scope == block or scope.startswith(block + ".")


def _shape(node: fx.Node) -> Shape | None:
    meta = node.meta.get("tensor_meta")
    return None if meta is None or not hasattr(meta, "shape") else tuple(meta.shape[1:])


def _reach(start: fx.Node, block: str, step) -> set[fx.Node]:
    """Nodes reachable from `start` (itself included) through `step`, staying inside `block`."""
    seen: set[fx.Node] = set()
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node in seen or not _inside(_scope(node), block) or node.op == "placeholder":
            continue
        seen.add(node)
        queue.extend(step(node))
    return seen


def _layers(nodes: set[fx.Node], order: dict[fx.Node, int]) -> tuple[str, ...]:
    return tuple(
        str(n.target) for n in sorted(nodes, key=order.__getitem__) if n.op == "call_module"
    )


def _merge(node: fx.Node, kind: str, block: str, order: dict[fx.Node, int]) -> Merge:
    paths = [_reach(source, block, lambda n: n.all_input_nodes) for source in node.all_input_nodes]
    shared = set.intersection(*paths)
    after = _reach(node, block, lambda n: list(n.users)) - {node}
    branches = tuple(
        Branch(_layers(path - shared, order), _shape(source))
        for path, source in zip(paths, node.all_input_nodes, strict=True)
    )
    return Merge(kind, _layers(shared, order), branches, _layers(after, order), _shape(node))


def model_blocks(model: nn.Module, input_shape: Shape) -> tuple[Block, ...]:
    """Container modules of `model` on one C×H×W input, in execution order (those that did not
    run last), each with its output shape and, if its forward joins paths, the join."""
    was_training = {module: module.training for module in model.modules()}
    model.eval()  # auxiliary heads and dropout take their inference path, as in the summary
    try:
        graph_module = symbolic_trace(model)  # an untraceable model: CNNCoreError naming `model`
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        try:
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape, device=device))
        except (RuntimeError, ValueError) as exc:  # the summary names the layer; here: why
            raise CNNCoreError(f"the model does not run on this input: {exc}", "model",
                               code="model_does_not_run") from exc  # fmt: skip
    finally:
        for module, training in was_training.items():
            module.training = training
    nodes = list(graph_module.graph.nodes)
    order = {node: index for index, node in enumerate(nodes)}
    joins: dict[str, list[tuple[fx.Node, str]]] = {}
    for node in nodes:
        kind = _merge_kind(node)
        if kind is not None:
            joins.setdefault(_scope(node), []).append((node, kind))

    blocks: list[tuple[int, Block]] = []
    for name, module in model.named_modules():
        if name == "" or next(module.children(), None) is None:
            continue  # the model itself and its leaf layers are the summary's rows
        inside = [n for n in nodes if n.op != "placeholder" and _inside(_scope(n), name)]
        # Its output: the last of its nodes that something outside the container uses.
        leaving = [n for n in inside if any(not _inside(_scope(u), name) for u in n.users)]
        own = joins.get(name, [])
        merge = _merge(*own[0], name, order) if len(own) == 1 else None
        output = _shape(leaving[-1]) if leaving else None
        first = order[inside[0]] if inside else len(nodes)
        blocks.append((first, Block(name, type(module).__name__, output, merge)))
    return tuple(block for _, block in sorted(blocks, key=lambda item: item[0]))
