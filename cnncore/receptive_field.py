"""Theoretical receptive fields: size, effective stride (jump) and start of every layer, and the
input-pixel box of any unit.

Follows Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019 (doi:10.23915/distill.00021). Per axis, through a layer with kernel k, stride s,
padding p (before) and dilation d (effective kernel k' = d·(k − 1) + 1):

    r_l     = r_{l−1} + (k' − 1)·j_{l−1}                  receptive field size
    j_l     = j_{l−1}·s                                     jump (effective stride)
    start_l = start_{l−1} + ((k' − 1)/2 − p)·j_{l−1}        centre of the first unit's field

from r_0 = j_0 = 1, start_0 = 0; Distill's effective padding is P = (r − 1)/2 − start, and unit u
sees input pixels start + u·j ± (r − 1)/2. The model's graph comes from `torch.fx.symbolic_trace`:
elementwise layers (activations, batch norm in eval, dropout) pass the field through; `add` and
`cat` merge paths into the hull of their fields (Distill's "largest over the paths") and flag paths
whose centres or jumps differ as *not aligned*; flatten, linear and whole-map pooling make the
field global. Output sizes come from `cnncore.arithmetic` only.

The box of one unit is walked backwards through the graph, so it is exact even where the closed
form is not (adaptive pooling with uneven windows, transposed convolutions): `box` is the field
with padding included, `clipped_box` the input pixels that can actually change the unit, i.e. the
bounding box of the support of its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from torch import fx, nn

from cnncore.errors import CNNCoreError
from cnncore.features import trace_layers
from cnncore.inspect import ModelSummary
from cnncore.models import build_model, model_input_shape
from cnncore.receptive_field_layers import (
    NON_TENSOR_METHODS,
    Window,
    classify,
    flattens,
    operation_name,
    windowed_output_size,
)

__all__ = [
    "AxisField",
    "Box",
    "FieldGraph",
    "ReceptiveField",
    "UnitReceptiveField",
    "model_field_graph",
    "receptive_fields",
    "summary_fields",
    "trace_receptive_fields",
    "unit_receptive_field",
]

_AXES = ("height", "width")


@dataclass(frozen=True)
class AxisField:
    """The receptive field of a layer along one axis, in input pixels."""

    size: float  # r: pixels one unit sees
    jump: float  # j: input pixels between neighbouring units (effective stride)
    start: float  # centre of unit 0's field; negative or fractional when padding shifts it

    def __post_init__(self) -> None:
        for name in ("size", "jump", "start"):  # whole numbers as ints: 11, not 11.0
            value = getattr(self, name)
            object.__setattr__(self, name, int(value) if float(value).is_integer() else value)

    @property
    def effective_padding(self) -> float:
        """Distill's P: how far unit 0's field reaches before pixel 0, (r − 1)/2 − start."""
        value = (self.size - 1) / 2 - self.start
        return int(value) if value.is_integer() else value

    def span(self, index: int) -> tuple[float, float]:
        """First and last input pixel of unit `index`: start + index·jump ± (r − 1)/2."""
        centre = self.start + index * self.jump
        half = (self.size - 1) / 2
        return centre - half, centre + half


@dataclass(frozen=True)
class ReceptiveField:
    """One layer's receptive field: what every unit of its output map sees of the input."""

    layer: str  # dotted module path (`layer1.0.conv1`); functional ops as `layer1.0.add`, named
    # by `cnncore.features.trace_layers` so feature maps and receptive fields agree
    node: str  # the torch.fx node name
    operation: str  # module class or function name: Conv2d, MaxPool2d, add, cat, flatten ...
    output_size: tuple[int, int] | None  # feature map (H, W); None once flattened
    height: AxisField
    width: AxisField
    aligned: bool  # all paths into this layer centre their fields on the same pixel
    uniform: bool  # every unit follows start + index·jump exactly (the closed form holds)
    is_global: bool  # the spatial layout has been pooled or flattened away


@dataclass(frozen=True)
class Box:
    """Input rows y0..y1 and columns x0..x1, both ends included."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0 + 1

    @property
    def width(self) -> int:
        return self.x1 - self.x0 + 1

    @property
    def area(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class UnitReceptiveField:
    """Where one unit (layer, y, x) looks in the input image."""

    field: ReceptiveField
    y: int
    x: int
    box: Box  # the whole field, padding included (may start below 0 or end past the image)
    clipped_box: Box | None  # bounding box of the input pixels that can change the unit (None:
    # it sees only padding); inside it, dilation or stride may skip rows and columns
    padding_cells: int  # cells of `box` that fall in the padding, outside the image
    unreached_cells: int  # image cells inside `box` the unit cannot see: dropped at the border by
    # a rounded-down output size, or skipped by dilation


# Per axis: (first, last) unit counting padding cells, and the set of real cells reached.
_Request = tuple[tuple[int, int], frozenset[int]]


@dataclass(frozen=True)
class _Step:
    node: str
    inputs: tuple[str, ...]  # nodes on the path from the image
    rule: str  # input | pass | merge | window | transposed | adaptive | global
    windows: tuple[Window, Window] | None
    field: ReceptiveField


def _window_through(f: AxisField, w: Window) -> AxisField:
    """Distill's recurrence through one sliding window."""
    k = w.effective
    return AxisField(
        f.size + (k - 1) * f.jump, f.jump * w.stride, f.start + ((k - 1) / 2 - w.padding) * f.jump
    )


def _transposed_inputs(o_lo: int, o_hi: int, w: Window) -> tuple[int, int]:
    """Input units a transposed conv scatters into outputs o_lo..o_hi (o = i·s − p + t·d)."""
    lo = -((w.effective - 1 - o_lo - w.padding) // w.stride)  # ceil((o + p − (k'−1)) / s)
    hi = (o_hi + w.padding) // w.stride
    return lo, hi


def _adaptive_inputs(o_lo: int, o_hi: int, n: int, m: int) -> tuple[int, int]:
    """Input cells pooled by adaptive outputs o_lo..o_hi (ATen: ⌊i·n/m⌋ to ⌈(i+1)·n/m⌉ − 1)."""
    return o_lo * n // m, -(-(o_hi + 1) * n // m) - 1


def _forward_axis(
    rule: str, f: AxisField, w: Window | None, n: int, m: int
) -> tuple[AxisField, bool]:
    """The field of a step's output from its input's, and whether the closed form stays exact."""
    if rule == "window":
        assert w is not None
        return _window_through(f, w), True
    if rule == "global":
        return _window_through(f, Window(n, n, 0)), True
    if rule == "transposed":
        assert w is not None
        lo, hi = _transposed_inputs(0, 0, w)
        return (
            AxisField(
                f.size + (hi - lo) * f.jump, f.jump / w.stride, f.start + (lo + hi) / 2 * f.jump
            ),
            w.stride == 1 and w.dilation == 1,
        )
    if rule == "adaptive":  # uneven windows (n not a multiple of m); unit 0 stands for all
        lo, hi = _adaptive_inputs(0, 0, n, m)
        return AxisField(
            f.size + (hi - lo) * f.jump, f.jump * n / m, f.start + (lo + hi) / 2 * f.jump
        ), False
    return f, True


def _merge_axis(fields: list[AxisField]) -> tuple[AxisField, bool, bool]:
    """The hull of several paths' fields; (field, aligned, uniform)."""
    half = [(f.size - 1) / 2 for f in fields]
    lo = min(f.start - h for f, h in zip(fields, half, strict=True))
    hi = max(f.start + h for f, h in zip(fields, half, strict=True))
    same_jump = len({f.jump for f in fields}) == 1
    aligned = same_jump and len({f.start for f in fields}) == 1
    return AxisField(hi - lo + 1, max(f.jump for f in fields), (lo + hi) / 2), aligned, same_jump


def _backward_axis(step: _Step, axis: int, request: _Request, n: int) -> _Request:
    """Input units that output units need: an interval counting padding, and the exact set of
    the n real cells (sets, not intervals, because dilation and strides leave holes)."""
    (lo, hi), cells = request
    w = step.windows[axis] if step.windows else None
    if step.rule == "window":
        assert w is not None
        wide = (lo * w.stride - w.padding, hi * w.stride - w.padding + w.effective - 1)
        taps = [t * w.dilation - w.padding for t in range(w.kernel)]
        return wide, frozenset(i for u in cells for t in taps if 0 <= (i := u * w.stride + t) < n)
    if step.rule == "transposed":  # output o = i·s − p + t·d: solve for the input i
        assert w is not None
        shifts = [w.padding - t * w.dilation for t in range(w.kernel)]
        return _transposed_inputs(lo, hi, w), frozenset(
            (o + t) // w.stride
            for o in cells
            for t in shifts
            if (o + t) % w.stride == 0 and 0 <= (o + t) // w.stride < n
        )
    if step.rule == "adaptive":
        m = step.field.output_size[axis] if step.field.output_size else 1
        pooled = (_adaptive_inputs(o, o, n, m) for o in cells)  # no padding: clip the request
        return (
            _adaptive_inputs(max(lo, 0), min(hi, m - 1), n, m),
            frozenset(i for first, last in pooled for i in range(first, last + 1)),
        )
    if step.rule == "global":
        return (0, n - 1), frozenset(range(n)) if cells else frozenset()
    return request


def _union(a: _Request | None, b: _Request) -> _Request:
    if a is None:
        return b
    return (min(a[0][0], b[0][0]), max(a[0][1], b[0][1])), a[1] | b[1]


@dataclass(frozen=True)
class FieldGraph:
    """A traced model with the receptive field of every layer, ready to locate any unit."""

    graph_module: fx.GraphModule
    input_shape: tuple[int, int, int]  # channels, height, width
    steps: tuple[_Step, ...]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_shape[1], self.input_shape[2]

    @property
    def fields(self) -> dict[str, ReceptiveField]:
        """Every layer in execution order, keyed by its name."""
        return {s.field.layer: s.field for s in self.steps if s.rule != "input"}

    def module_calls(self) -> dict[str, list[ReceptiveField]]:
        """The field after each call of each module, by dotted module path, in call order.

        A model summary lists module calls (a module run twice has two rows under one name)
        while the graph names a second call `name_1`; matching the k-th call of a module to
        its k-th summary row needs no name arithmetic. Functional layers (`add`, `cat`) are
        not module calls and are left out."""
        targets = {
            n.name: str(n.target) for n in self.graph_module.graph.nodes if n.op == "call_module"
        }
        calls: dict[str, list[ReceptiveField]] = {}
        for s in self.steps:
            if s.node in targets:
                calls.setdefault(targets[s.node], []).append(s.field)
        return calls

    def step(self, layer: str) -> _Step:
        for s in self.steps:
            if s.field.layer == layer and s.rule != "input":
                return s
        raise CNNCoreError(
            f"no layer named {layer!r} in this model; layers are {', '.join(self.fields)}",
            "layer",
            code="unknown_layer",
            ctx={"expected": list(self.fields)},  # the model's names only: never what was sent
        )

    def default_layer(self) -> str:
        """The deepest layer whose feature map still has a spatial layout (before global
        pooling or flattening; failing that, the deepest layer with any feature map)."""
        layers = [s.field for s in self.steps if s.rule != "input"]
        for keep in (lambda f: not f.is_global, lambda f: f.output_size is not None):
            found = [f.layer for f in layers if f.output_size is not None and keep(f)]
            if found:
                return found[-1]
        raise CNNCoreError(
            "this model has no layer with a feature map", "layer", code="no_feature_map_layer"
        )

    def unit(self, layer: str, y: int | None = None, x: int | None = None) -> UnitReceptiveField:
        """The box of unit (y, x) of `layer` (default: its centre), walked back to the input."""
        target = self.step(layer)
        height, width = target.field.output_size or (1, 1)
        y = height // 2 if y is None else y
        x = width // 2 if x is None else x
        for name, value, limit in (("y", y, height), ("x", x, width)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise CNNCoreError(
                    f"{name} must be between 0 and {limit - 1}: layer {layer} has "
                    f"{height}×{width} units, got {value!r}",
                    name,
                    code="unit_out_of_range",
                    ctx={"le": limit - 1, "height": height, "width": width, "layer": layer},
                )
        requests: dict[str, tuple[_Request, _Request]] = {
            target.node: (((y, y), frozenset({y})), ((x, x), frozenset({x})))
        }
        by_node = {s.node: s for s in self.steps}
        result = None
        for step in reversed(self.steps[: self.steps.index(target) + 1]):
            request = requests.pop(step.node, None)
            if request is None:
                continue
            if step.rule == "input":
                result = request
                continue
            for source in step.inputs:
                sizes = by_node[source].field.output_size or (1, 1)
                mapped = tuple(_backward_axis(step, a, request[a], sizes[a]) for a in (0, 1))
                previous = requests.get(source)
                requests[source] = (
                    _union(previous and previous[0], mapped[0]),
                    _union(previous and previous[1], mapped[1]),
                )
        assert result is not None, "every layer is reached from the input"
        ((y0, y1), rows_seen), ((x0, x1), cols_seen) = result
        box = Box(y0, y1, x0, x1)
        clipped = None
        if rows_seen and cols_seen:
            clipped = Box(min(rows_seen), max(rows_seen), min(cols_seen), max(cols_seen))
        rows, cols = self.input_size
        inside = Box(max(y0, 0), min(y1, rows - 1), max(x0, 0), min(x1, cols - 1))
        inside_area = max(inside.height, 0) * max(inside.width, 0)
        return UnitReceptiveField(
            target.field,
            y,
            x,
            box,
            clipped,
            padding_cells=box.area - inside_area,
            unreached_cells=inside_area - len(rows_seen) * len(cols_seen),
        )


def trace_receptive_fields(model: nn.Module, input_shape: tuple[int, int, int]) -> FieldGraph:
    """Trace `model` (in eval mode) with torch.fx and compute the receptive field of every layer
    for inputs of `input_shape` (channels, height, width). Batch norm counts as its eval-mode
    affine map; in training mode it would mix every position of the batch."""
    for field, value in zip(("channels", "height", "width"), input_shape, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CNNCoreError(
                f"{field} must be a positive integer, got {value!r}", field, code="positive_integer"
            )
    layers = trace_layers(model)  # the same graph and layer names as the feature maps
    graph_module = layers.graph_module
    modules = dict(graph_module.named_modules())
    size = (input_shape[1], input_shape[2])
    steps: list[_Step] = []
    by_node: dict[str, _Step] = {}
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            if by_node:
                raise CNNCoreError(
                    "the model takes more than one input", "model", code="model_several_inputs"
                )
            unit = AxisField(1, 1, 0)
            field = ReceptiveField("input", node.name, "input", size, unit, unit, True, True, False)
            step = _Step(node.name, (), "input", None, field)
        elif node.op in ("output", "get_attr"):
            continue
        else:
            inputs = tuple(n.name for n in node.all_input_nodes if n.name in by_node)
            if (
                not inputs
                or (node.op == "call_method" and node.target in NON_TENSOR_METHODS)
                or node.target is getattr
            ):
                continue  # constants and sizes: nothing of the image flows through
            name = layers.names.get(node, node.name)
            step = _step(node, [by_node[n] for n in inputs], modules, name)
        steps.append(step)
        by_node[step.node] = step
    return FieldGraph(graph_module, tuple(input_shape), tuple(steps))


def _step(node: fx.Node, sources: list[_Step], modules: dict[str, nn.Module], name: str) -> _Step:
    """One node's field from its sources' fields."""
    first = sources[0].field
    spatial = first.output_size is not None
    layer_rule = classify(node, modules, spatial, name)
    rule, windows, module = layer_rule.rule, layer_rule.windows, layer_rule.module
    if rule == "merge":
        sizes = {s.field.output_size for s in sources}
        if len(sizes) > 1:
            raise CNNCoreError(
                f"layer {name} joins feature maps of different sizes {sizes}",
                "model",
                code="merge_sizes_differ",
                ctx={"layer": name},
            )
        heights = _merge_axis([s.field.height for s in sources])
        widths = _merge_axis([s.field.width for s in sources])
        field = ReceptiveField(
            name,
            node.name,
            operation_name(node, module),
            first.output_size,
            heights[0],
            widths[0],
            aligned=heights[1] and widths[1] and all(s.field.aligned for s in sources),
            uniform=heights[2] and widths[2] and all(s.field.uniform for s in sources),
            is_global=any(s.field.is_global for s in sources),
        )
        return _Step(node.name, tuple(s.node for s in sources), rule, None, field)
    if len(sources) > 1:
        raise CNNCoreError(
            f"layer {name} takes several feature maps but is not a merge",
            "model",
            code="several_inputs_not_merge",
            ctx={"layer": name},
        )
    in_size = first.output_size
    out_size = in_size
    if rule in ("window", "transposed", "adaptive") and in_size is None:
        raise CNNCoreError(
            f"layer {name} slides over a flattened vector",
            "model",
            code="slides_over_flattened",
            ctx={"layer": name},
        )
    if rule == "adaptive":
        assert in_size is not None
        target = layer_rule.output_size
        wanted = (target, target) if isinstance(target, int) else tuple(target)
        out_size = (wanted[0] or in_size[0], wanted[1] or in_size[1])
        if in_size[0] % out_size[0] == 0 and in_size[1] % out_size[1] == 0:
            # even windows: an ordinary pool with kernel = stride = n / m, so the closed form holds
            rule = "window"
            windows = tuple(
                Window(n // m, n // m, 0) for n, m in zip(in_size, out_size, strict=True)
            )
    elif rule in ("window", "transposed"):
        assert in_size is not None
        assert windows is not None
        try:
            out_size = windowed_output_size(layer_rule, in_size)
        except CNNCoreError as exc:
            # the arithmetic's code and numbers travel on, so the page can say why in Korean
            raise CNNCoreError(
                f"at layer {name}: {exc}",
                exc.field if exc.field in _AXES else "height",
                code=exc.code,
                ctx={**exc.ctx, "layer": name},
            ) from exc
    elif rule == "global":
        out_size = None if flattens(node) else (1, 1)
    uniform = first.uniform
    axes = []
    for axis, f in enumerate((first.height, first.width)):
        n = in_size[axis] if in_size else 1
        m = out_size[axis] if out_size else 1
        field, exact = _forward_axis(rule, f, windows[axis] if windows else None, n, m)
        axes.append(field)
        uniform = uniform and exact
    # A window as large as the whole map (global average pooling) leaves one unit that sees it all.
    covers_map = (
        rule == "window"
        and in_size is not None
        and windows is not None
        and all(w.kernel >= n and w.padding == 0 for w, n in zip(windows, in_size, strict=True))
    )
    field = ReceptiveField(
        name,
        node.name,
        operation_name(node, module),
        out_size,
        axes[0],
        axes[1],
        first.aligned,
        uniform,
        first.is_global or rule == "global" or covers_map,
    )
    return _Step(node.name, (sources[0].node,), rule, windows, field)


def receptive_fields(
    model: nn.Module, input_shape: tuple[int, int, int]
) -> dict[str, ReceptiveField]:
    """The receptive field of every layer of `model` (Araujo et al., Distill 2019), by name."""
    return trace_receptive_fields(model, input_shape).fields


def unit_receptive_field(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    layer: str | None = None,
    y: int | None = None,
    x: int | None = None,
) -> UnitReceptiveField:
    """The input box of unit (y, x) of `layer` (default: the deepest feature map, its centre)."""
    graph = trace_receptive_fields(model, input_shape)
    return graph.unit(layer or graph.default_layer(), y, x)


NOT_RUN = "this layer does not run at inference (eval mode): none of its units exists"
NOT_TRACED = "this module call is not a step of the traced graph"


def summary_fields(
    summary: ModelSummary, graph: FieldGraph
) -> list[tuple[ReceptiveField | None, str | None]]:
    """Per row of a model summary (`cnncore.inspect`), its receptive field, or None and why.

    Rows are module calls in execution order, so the k-th row naming a module takes the field
    after that module's k-th call (`FieldGraph.module_calls`)."""
    calls = graph.module_calls()
    seen: dict[str, int] = {}
    matched: list[tuple[ReceptiveField | None, str | None]] = []
    for row in summary.layers:
        if row.output_shape is None:
            matched.append((None, NOT_RUN))
            continue
        index = seen[row.name] = seen.get(row.name, -1) + 1
        found = calls.get(row.name, [])
        matched.append((found[index], None) if index < len(found) else (None, NOT_TRACED))
    return matched


@lru_cache(maxsize=64)
def model_field_graph(
    name: str,
    channels: int | None = None,
    height: int | None = None,
    width: int | None = None,
    num_classes: int | None = None,
) -> FieldGraph:
    """The traced fields of a zoo model built on the meta device (geometry only, no weights),
    cached; omitted values take the model's defaults. Unknown names raise UnknownModelError."""
    shape = model_input_shape(name, channels, height, width).as_tuple()
    model = build_model(
        name, device="meta", in_channels=shape[0], num_classes=num_classes, input_size=shape[1:]
    )
    return trace_receptive_fields(model, shape)
