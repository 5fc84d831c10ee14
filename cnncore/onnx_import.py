"""An ONNX file → a torch model cnnviz can inspect like a zoo model.

    imported = import_onnx(data, OnnxLimits())   # bytes of a .onnx file
    imported.module(torch.zeros(1, *imported.input_shape))

What is refused, and in which order (each before anything it protects is allocated):
1. more bytes than `max_bytes`; 2. bytes that are not an ONNX protobuf (parsed by the `onnx`
package; nothing is ever unpickled); 3. more nodes than `max_nodes` (subgraphs counted);
4. operators of any domain but the standard one, model-local functions, sparse initializers;
5. tensors stored as external data (never opened, whatever path they name); 6. more parameter
values than `max_parameters`, counted from the declared dims; 7. what `onnx.checker` finds invalid
(a graph not in topological order — a cycle — included); 8. an input that is not one N×C×H×W
float image of fixed C, H and W within `max_input_pixels` (an N×H×W×C one read only through a
Transpose to N×C×H×W, as tf2onnx writes Keras models, is taken as N×C×H×W); 9. unsupported
operators, all of them named with their nodes at once.

Why our own converter and not onnx2torch (1.5.15): it imports torchvision when it is imported
(its NMS and RoIAlign converters), which this project does not install beside its CPU torch, and
it names modules after ONNX node names rather than the dotted paths the rest of cnnviz uses.
The operators converted are `SUPPORTED_OPERATORS` (docs/ONNX.md lists them with their limits).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.onnx_graph import GraphBuilder, Value
from cnncore.onnx_ops import CONVERTERS, NodeView
from cnncore.onnx_shape_ops import __all__ as _registered  # noqa: F401  (registers its converters)
from cnncore.onnx_tensors import declared_elements, is_external, read_tensor

__all__ = [
    "SUPPORTED_OPERATORS",
    "ImportedModel",
    "OnnxLimits",
    "check_onnx",
    "import_onnx",
    "warm_up_import",
]

SUPPORTED_OPERATORS = frozenset(CONVERTERS)
STANDARD_DOMAINS = ("", "ai.onnx")
MIN_OPSET, MAX_OPSET = 7, 23
LISTED = 32  # unsupported nodes written out in a refusal (the rest are counted)


@dataclass(frozen=True)
class OnnxLimits:
    """What one uploaded model may hold (app settings `onnx_max_*`)."""

    max_bytes: int = 120_000_000
    max_nodes: int = 5_000
    max_parameters: int = 30_000_000  # values of all initializers and constants
    max_input_pixels: int = 1024 * 1024  # height × width of the input
    max_input_channels: int = 4


@dataclass(frozen=True)
class ImportedModel:
    """A converted model and what its file said about itself."""

    module: nn.Module  # a torch.fx GraphModule in eval mode
    input_name: str
    input_shape: tuple[int, int, int]  # C, H, W (the batch axis is free)
    output_shape: tuple[int, ...]  # without the batch axis
    opset: int
    producer: str
    operators: tuple[str, ...]  # the operator types used, sorted
    nodes: int
    parameters: int
    sources: dict[str, str] = field(default_factory=dict)  # layer name → ONNX node name


def _refusal(message: str, code: str, **ctx: object) -> CNNCoreError:
    return CNNCoreError(message, "model", code=code, ctx=ctx)


def _count_nodes(graph: onnx.GraphProto, limit: int) -> int:
    """Nodes of the graph and of every subgraph in its attributes, stopping past `limit`."""
    count, stack = 0, [graph]
    while stack and count <= limit:
        current = stack.pop()
        count += len(current.node)
        for node in current.node:
            for attr in node.attribute:
                stack.extend([attr.g] if attr.HasField("g") else [])
                stack.extend(attr.graphs)
    return count


def _tensors(model: onnx.ModelProto) -> list[tuple[str, TensorProto]]:
    """Every dense tensor the main graph holds: initializers and Constant nodes' values."""
    found = [(t.name, t) for t in model.graph.initializer]
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                found.append((node.name or node.op_type, attr.t))
            found += [(node.name or node.op_type, t) for t in attr.tensors]
    return found


def check_onnx(data: bytes, limits: OnnxLimits) -> onnx.ModelProto:
    """Steps 1–7 of the module docstring: a parsed model within the limits, or a refusal."""
    if len(data) > limits.max_bytes:
        raise _refusal(
            f"the file has {len(data)} bytes, more than the {limits.max_bytes} allowed",
            "onnx_too_large",
            size=len(data),
            limit=limits.max_bytes,
        )
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _refusal(f"this is not an ONNX model file ({exc})", "onnx_unreadable") from exc
    if not model.HasField("graph"):
        raise _refusal("this is not an ONNX model file (it has no graph)", "onnx_unreadable")
    nodes = _count_nodes(model.graph, limits.max_nodes)
    if nodes > limits.max_nodes:
        raise _refusal(
            f"the model has more than {limits.max_nodes} nodes",
            "onnx_too_many_nodes",
            count=nodes,
            limit=limits.max_nodes,
        )
    custom = sorted(
        {o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS}
        | {n.domain for n in model.graph.node if n.domain not in STANDARD_DOMAINS}
    )
    if custom or len(model.functions) or len(model.graph.sparse_initializer):
        domain = (custom or ["local functions"])[0][:64]
        raise _refusal(
            f"operators of domain {domain!r} are not supported: only the standard "
            "ONNX operators are",
            "onnx_custom_domain",
            domain=domain,
        )
    tensors = _tensors(model)
    for where, tensor in tensors:
        if is_external(tensor):
            read_tensor(tensor, where)  # refuses it (never opens the file)
    values = sum(declared_elements(tensor) for _, tensor in tensors)
    if values > limits.max_parameters:
        raise _refusal(
            f"the model holds {values} parameter values, more than the "
            f"{limits.max_parameters} allowed",
            "onnx_too_many_parameters",
            count=values,
            limit=limits.max_parameters,
        )
    try:
        onnx.checker.check_model(data)  # the bytes as sent: no second serialisation
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise _refusal(f"the ONNX checker refuses this model: {text}", "onnx_invalid") from exc
    return model


def _opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS]
    opset = versions[0] if versions else 0
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise _refusal(
            f"opset {opset} is not supported (from {MIN_OPSET} to {MAX_OPSET})",
            "onnx_opset",
            count=opset,
            start=MIN_OPSET,
            stop=MAX_OPSET,
        )
    return opset


NCHW = [0, 3, 1, 2]  # the Transpose tf2onnx puts after a Keras model's N×H×W×C input


def _channels_last(graph: onnx.GraphProto, name: str) -> set[int]:
    """Indices of the Transposes to N×C×H×W that are the only readers of a channels-last input
    (what tf2onnx writes for Keras models); empty when the input is read otherwise."""
    readers = [(i, n) for i, n in enumerate(graph.node) if name in n.input]
    perms = [list(helper.get_attribute_value(a)) for _, n in readers for a in n.attribute
             if n.op_type == "Transpose" and a.name == "perm"]  # fmt: skip
    if readers and len(perms) == len(readers) and all(p == NCHW for p in perms):
        return {i for i, _ in readers}
    return set()


def _image_input(
    graph: onnx.GraphProto, limits: OnnxLimits
) -> tuple[str, tuple[int, int, int], set[int]]:
    """The one input that is not an initializer: float N×C×H×W with C, H and W fixed, or
    N×H×W×C read only through Transposes to N×C×H×W (returned: those nodes, to skip)."""
    constants = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise _refusal(
            f"the model must take one input (an image), it takes {len(inputs)}",
            "onnx_inputs",
            count=len(inputs),
        )
    found = inputs[0]
    kind = found.type.tensor_type
    dims = list(kind.shape.dim) if kind.HasField("shape") else []
    if kind.elem_type != TensorProto.FLOAT or len(dims) != 4:
        raise _refusal(
            f"input {found.name!r} must be a float tensor N×C×H×W",
            "onnx_inputs",
            count=1,
            input_name=found.name[:64],
        )
    sizes = []
    for axis, dim in enumerate(dims[1:], start=1):
        if not dim.HasField("dim_value") or dim.dim_value <= 0:
            raise _refusal(
                f"input {found.name!r}: dimension {axis} has no fixed size "
                f"({dim.dim_param or 'unknown'}); export with a fixed channel count and image "
                "size (only the batch axis may vary)",
                "onnx_dynamic_shape",
                input_name=found.name[:64],
                dimension=axis,
            )
        sizes.append(int(dim.dim_value))
    batch = dims[0]
    if batch.HasField("dim_value") and batch.dim_value not in (0, 1):
        raise _refusal(
            f"input {found.name!r}: a batch of {batch.dim_value} is fixed; export "
            "with batch 1 or a free batch axis",
            "onnx_dynamic_shape",
            input_name=found.name[:64],
            dimension=0,
        )
    channels, height, width = sizes
    skipped = _channels_last(graph, found.name)
    if skipped:
        height, width, channels = sizes
    if channels > limits.max_input_channels or height * width > limits.max_input_pixels:
        raise _refusal(
            f"input {channels}×{height}×{width} is larger than allowed",
            "onnx_input_too_large",
            channels=channels,
            height=height,
            width=width,
            pixels=height * width,
            limit=limits.max_input_pixels,
        )
    return found.name, (channels, height, width), skipped


def _unsupported(graph: onnx.GraphProto) -> None:
    missing = [(n.op_type, n.name) for n in graph.node if n.op_type not in CONVERTERS]
    if not missing:
        return
    listed = [f"{op} ({name or '?'})"[:64] for op, name in missing[:LISTED]]
    more = len(missing) - len(listed)
    kinds = sorted({op for op, _ in missing})
    raise _refusal(
        f"unsupported operators {', '.join(kinds)} in nodes: {', '.join(listed)}"
        + (f" and {more} more" if more else ""),
        "onnx_unsupported_operators",
        operators=listed,
        count=len(missing),
    )


def _attributes(node: onnx.NodeProto, where: str) -> dict[str, object]:
    values: dict[str, object] = {}
    for attr in node.attribute:
        if attr.type in (
            onnx.AttributeProto.GRAPH,
            onnx.AttributeProto.GRAPHS,
            onnx.AttributeProto.SPARSE_TENSOR,
            onnx.AttributeProto.SPARSE_TENSORS,
        ):
            raise _refusal(
                f"{where}: attribute {attr.name!r} holds a subgraph or sparse tensor",
                "onnx_operator_form",
                layer=where[:64],
                model=node.op_type[:64],
            )
        if attr.type == onnx.AttributeProto.TENSOR:
            values[attr.name] = read_tensor(attr.t, where)
        else:
            values[attr.name] = helper.get_attribute_value(attr)
    return values


NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # torch.onnx.export(dynamo=True): ['', 'layer1', …]


def _scope(node: onnx.NodeProto) -> str:
    """The dotted module path of the module that made this node, where torch's dynamo exporter
    recorded it (its node names are `node_conv2d_3`); '' otherwise."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES and len(prop.value) <= 4096:
            try:
                scopes = ast.literal_eval(prop.value)  # a list of strings: literals only
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return ""
            if isinstance(scopes, list) and len(scopes) >= 2 and isinstance(scopes[-2], str):
                return scopes[-2]
    return ""


def _convert(b: GraphBuilder, node: onnx.NodeProto, index: int, env: dict, opset: int) -> None:
    where = node.name or f"{node.op_type}_{index}"
    inputs: list[Value | None] = []
    for name in node.input:
        if name and name not in env:
            raise _refusal(
                f"node {where!r} reads {name!r} before any node makes it (a cycle, "
                "or an output cnnviz does not compute)",
                "onnx_graph_order",
                layer=where[:64],
            )
        inputs.append(env[name] if name else None)
    view = NodeView(where, node.op_type, inputs, _attributes(node, where), opset, _scope(node))
    try:
        outputs = CONVERTERS[node.op_type](b, view)
    except CNNCoreError:
        raise
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise view.refuse(f"cannot be converted ({type(exc).__name__}: {exc})"[:300]) from exc
    for name, value in zip(node.output, outputs, strict=False):
        if name:
            env[name] = value


def import_onnx(data: bytes, limits: OnnxLimits | None = None) -> ImportedModel:
    """Check and convert an ONNX file; refusals are `CNNCoreError`s with an `onnx_*` code."""
    limits = limits or OnnxLimits()
    model = check_onnx(data, limits)
    opset = _opset(model)
    graph = model.graph
    input_name, input_shape, skipped = _image_input(graph, limits)
    _unsupported(graph)
    builder = GraphBuilder(limits.max_parameters)
    env: dict[str, Value] = {}
    for tensor in graph.initializer:
        env[tensor.name] = Value.constant(read_tensor(tensor, tensor.name))
    env[input_name] = builder.placeholder("image", (1, *input_shape))
    for index, node in enumerate(graph.node):
        if index in skipped:  # the channels-last input's Transpose: the module takes N×C×H×W
            env[node.output[0]] = env[input_name]
            continue
        _convert(builder, node, index, env, opset)
    result = env.get(graph.output[0].name) if len(graph.output) else None
    if result is None or result.node is None:
        raise _refusal(
            "the model's output does not depend on its input",
            "onnx_graph_order",
            layer=graph.output[0].name[:64] if len(graph.output) else "",
        )
    builder.output(result)
    module = builder.finish()
    parameters = sum(t.numel() for t in module.state_dict().values())
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return ImportedModel(
        module=module,
        input_name=input_name,
        input_shape=input_shape,
        output_shape=result.shape[1:],
        opset=opset,
        producer=producer[:64],
        operators=tuple(sorted(Counter(n.op_type for n in graph.node))),
        nodes=len(graph.node),
        parameters=parameters,
        sources=dict(builder.sources),
    )


def warm_up_import() -> None:
    """Import a one-conv model once: the checker and torch's meta kernels load on first use
    (seconds on a cold process), so a server pays that before its first upload."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3], [0.0] * 9)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "warm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 6, 6])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import_onnx(model.SerializeToString())
