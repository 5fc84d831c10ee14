"""Building a torch.fx graph from ONNX nodes: values, layer names and constant folding.

The importer (`cnncore.onnx_import`) walks an ONNX graph in order; each operator's converter
(`cnncore.onnx_ops`) asks this builder for either a *layer* (an `nn.Module` installed under a
dotted path, so summaries, feature maps and receptive fields see it as the zoo's layers) or a
*function* node (additions, concatenations, reshapes — what a zoo model does in its `forward`).

Every value carries a tensor on the meta device: its shape and dtype, known at import time for
the one static input (batch 1), computed without allocating. A function whose inputs are all
constants is folded to a constant (the `Shape → Gather → Concat → Reshape` chains exporters write
for `x.view(x.size(0), -1)`), so the graph that remains holds only the layers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.func import functional_call

from cnncore.errors import CNNCoreError

__all__ = ["GraphBuilder", "Value", "layer_path"]

CONSTANTS = "onnx_constants"  # the container of the constant tensors the graph reads
_RESERVED = set(dir(nn.Module())) | {CONSTANTS}
_PART = re.compile(r"[^A-Za-z0-9_]")
MAX_NAME = 120
ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.SELU,
    nn.Softplus,
    nn.Softsign,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.GELU,
    nn.Mish,
    nn.Softmax,
    nn.LogSoftmax,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LocalResponseNorm,
)


@dataclass
class Value:
    """One ONNX value: its meta tensor (shape, dtype), and a graph node or a constant."""

    meta: torch.Tensor
    node: fx.Node | None = None
    const: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.meta.shape)

    @classmethod
    def constant(cls, tensor: torch.Tensor) -> Value:
        return cls(tensor.to("meta"), None, tensor)


def layer_path(node_name: str, op_type: str) -> list[str]:
    """The dotted module path an ONNX node's name suggests, as parts.

    torch.onnx names nodes by their module scope (`/layer1/layer1.0/conv1/Conv`: a Sequential
    child's scope repeats its parent's name), tf2onnx by its Keras scope
    (`sequential/conv2d/Conv2D`); both end with the operator, which is dropped. The result is
    the zoo's name (`layer1.0.conv1`) for a model torch exported.
    """
    scopes = [part for part in node_name.split("/") if part]
    if len(scopes) >= 2:
        scopes = scopes[:-1]
    path: list[str] = []
    for scope in scopes:
        # a scope may repeat the end of the path so far (`downsample` then `downsample.0`)
        for k in range(len(path), 0, -1):
            if scope.startswith(".".join(path[-k:]) + "."):
                path = path[:-k] + scope.split(".")
                break
        else:
            path += scope.split(".")
    parts = [_PART.sub("_", part)[:MAX_NAME] for part in path if part]
    parts = [f"{part}_" if part in _RESERVED else part for part in parts]
    return parts or [op_type.lower()]


def _meta_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: torch.empty_like(t, device="meta") for name, t in module.state_dict().items()}


class GraphBuilder:
    """An fx graph and the module tree it calls, filled one ONNX node at a time."""

    def __init__(self, max_constant_elements: int) -> None:
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.constants = nn.Module()
        self.root.add_module(CONSTANTS, self.constants)
        self.max_constant_elements = max_constant_elements
        self._leaves: set[str] = set()
        self._containers: set[str] = {CONSTANTS}
        self._constant_nodes: dict[int, fx.Node] = {}
        self.sources: dict[str, str] = {}  # layer name → ONNX node name

    # --- values -------------------------------------------------------------------------------
    def placeholder(self, name: str, shape: tuple[int, ...]) -> Value:
        node = self.graph.placeholder(name)
        return Value(torch.empty(shape, device="meta"), node)

    def arg(self, value: Any) -> Any:
        """A converter's argument as the graph takes it: a node for a value, else as given."""
        if isinstance(value, Value):
            if value.node is not None:
                return value.node
            return self._constant_node(value.const)
        if isinstance(value, (list, tuple)):
            return type(value)(self.arg(item) for item in value)
        return value

    def _constant_node(self, tensor: torch.Tensor) -> fx.Node:
        key = id(tensor)
        if key not in self._constant_nodes:
            name = f"c{len(self._constant_nodes)}"
            self.constants.register_buffer(name, tensor)
            self._constant_nodes[key] = self.graph.get_attr(f"{CONSTANTS}.{name}")
        return self._constant_nodes[key]

    def output(self, value: Value) -> None:
        self.graph.output(self.arg(value))

    # --- layers and functions -----------------------------------------------------------------
    def layer(
        self, onnx_name: str, op_type: str, module: nn.Module, *inputs: Value, scope: str = ""
    ) -> Value:
        """Install `module` under `scope` (a dotted module path the exporter recorded) or the
        path the node's name suggests, and call it on `inputs`."""
        parts = [p for p in (_PART.sub("_", s)[:MAX_NAME] for s in scope.split(".")) if p]
        parts = [f"{p}_" if p in _RESERVED else p for p in parts]
        name = self._free_name(parts or layer_path(onnx_name, op_type))
        self._install(name, module)
        self.sources[name] = onnx_name
        metas = tuple(v.meta for v in inputs)
        if isinstance(module, ELEMENTWISE):
            # same shape; and torch runs most of these on meta tensors through Python
            # decompositions whose first call imports torch._dynamo (seconds on a cold server)
            meta = torch.empty_like(metas[0])
        else:
            meta = functional_call(module, _meta_state(module), metas)
        node = self.graph.call_module(name, tuple(self.arg(v) for v in inputs))
        return Value(meta, node)

    def function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Value:
        """Call `fn` in the graph, or at import time when every value it reads is a constant."""
        meta = fn(*_pick(args, "meta"), **_pick(kwargs, "meta"))
        if _all_constant(args) and _all_constant(kwargs):
            if meta.numel() > self.max_constant_elements:
                raise CNNCoreError(
                    f"a constant of {meta.numel()} values is more than the "
                    f"{self.max_constant_elements} allowed",
                    "model",
                    code="onnx_too_many_parameters",
                    ctx={"count": meta.numel(), "limit": self.max_constant_elements},
                )
            return Value.constant(fn(*_pick(args, "const"), **_pick(kwargs, "const")))
        node = self.graph.call_function(fn, self.arg(tuple(args)), self.arg(kwargs))
        return Value(meta, node)

    def _free_name(self, parts: list[str]) -> str:
        base = ".".join(parts)
        name, repeat = base, 0
        while self._taken(name):
            repeat += 1
            name = f"{base}_{repeat}"
        return name

    def _taken(self, name: str) -> bool:
        if name in self._leaves or name in self._containers:
            return True
        parts = name.split(".")
        return any(".".join(parts[:i]) in self._leaves for i in range(1, len(parts)))

    def _install(self, name: str, module: nn.Module) -> None:
        parent = self.root
        parts = name.split(".")
        for i, part in enumerate(parts[:-1]):
            child = getattr(parent, part, None) if part in parent._modules else None
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
                self._containers.add(".".join(parts[: i + 1]))
            parent = child
        parent.add_module(parts[-1], module)
        self._leaves.add(name)

    def finish(self, class_name: str = "OnnxModel") -> fx.GraphModule:
        self.graph.lint()
        module = fx.GraphModule(self.root, self.graph, class_name)
        return module.eval()


def _pick(args: Any, attribute: str) -> Any:
    if isinstance(args, Value):
        return getattr(args, attribute)
    if isinstance(args, dict):
        return {k: _pick(v, attribute) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(_pick(v, attribute) for v in args)
    return args


def _all_constant(args: Any) -> bool:
    if isinstance(args, Value):
        return args.const is not None
    if isinstance(args, dict):
        return all(_all_constant(v) for v in args.values())
    if isinstance(args, (list, tuple)):
        return all(_all_constant(v) for v in args)
    return True


# the elementwise functions of the graph (operator.add etc. are what a zoo forward traces to)
BINARY = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mul": operator.mul,
    "Div": operator.truediv,
    "Pow": torch.pow,
    "Max": torch.maximum,
    "Min": torch.minimum,
}
