"""A trained network as one readable, standalone PyTorch file (torch and safetensors alone).

The file is written from the network's structure, never from pickled objects:

- every layer (a module without children: conv, batch norm, activation, pooling, linear…) is
  written as its constructor call, from its attributes (`nn.Conv2d(3, 16, kernel_size=3,
  padding=1)`), only the arguments that differ from PyTorch's defaults;
- every block class of the zoo (`BasicBlock`, `Inception`, `InvertedResidual`…) becomes a small
  class of the same name that receives its layers as keyword arguments, and whose `forward` is
  the block's own, traced with `torch.fx` one level deep (its children are called, not inlined),
  so the file reads like the zoo's source and the layer names are the run's (`layer1.0.conv1`,
  exactly the keys of the safetensors file);
- `nn.Sequential` stays a Sequential (named with an OrderedDict when its names are not 0, 1…).

What the trace fixes at export time (a block with or without a shortcut, the run's activation)
is written out as it is: two blocks of one class that trace differently become two classes
(`BasicBlock`, `BasicBlock2`). A structure this writer does not know (a layer type outside the
table below, a parameter held by a block itself, a call outside torch and `operator`) is refused
with a `CNNCoreError` rather than written wrong.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from cnncore.errors import CNNCoreError
from cnncore.features import OwnThreadTracer, traced_alone

__all__ = ["PyFileFacts", "python_file"]

_MISSING = object()


@dataclass(frozen=True)
class PyFileFacts:
    """What the generated file says about the network besides its layers."""

    title: str  # first line of the docstring
    weights_file: str  # file name of the safetensors next to it
    input_shape: tuple[int, int, int]
    labels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sha256: str  # of the weights file


def _pair(value: Any) -> Any:
    """(3, 3) → 3: torch stores both forms; the short one reads better."""
    if isinstance(value, tuple) and len(value) > 1 and all(v == value[0] for v in value):
        return value[0]
    return value


# type → (positional attributes, ((keyword, attribute or getter, default), ...))
def _bias(module: nn.Module) -> bool:
    return module.bias is not None


_CONV = (
    ("kernel_size", "kernel_size", _MISSING),
    ("stride", "stride", 1),
    ("padding", "padding", 0),
    ("dilation", "dilation", 1),
    ("groups", "groups", 1),
    ("bias", _bias, True),
    ("padding_mode", "padding_mode", "zeros"),
)
_NORM = (
    ("eps", "eps", 1e-5),
    ("momentum", "momentum", 0.1),
    ("affine", "affine", True),
    ("track_running_stats", "track_running_stats", True),
)
_INPLACE = (("inplace", "inplace", False),)
_LAYERS: dict[type[nn.Module], tuple[tuple[str, ...], tuple[tuple[str, Any, Any], ...]]] = {
    nn.Conv2d: (("in_channels", "out_channels"), _CONV),
    nn.ConvTranspose2d: (
        ("in_channels", "out_channels"),
        (
            *_CONV[:2],
            ("padding", "padding", 0),
            ("output_padding", "output_padding", 0),
            *_CONV[4:6],
            ("dilation", "dilation", 1),
        ),
    ),  # fmt: skip
    nn.Linear: (("in_features", "out_features"), (("bias", _bias, True),)),
    nn.BatchNorm1d: (("num_features",), _NORM),
    nn.BatchNorm2d: (("num_features",), _NORM),
    nn.MaxPool2d: (
        (),
        (
            ("kernel_size", "kernel_size", _MISSING),
            ("stride", "stride", None),
            ("padding", "padding", 0),
            ("dilation", "dilation", 1),
            ("ceil_mode", "ceil_mode", False),
        ),
    ),  # fmt: skip
    nn.AvgPool2d: (
        (),
        (
            ("kernel_size", "kernel_size", _MISSING),
            ("stride", "stride", None),
            ("padding", "padding", 0),
            ("ceil_mode", "ceil_mode", False),
            ("count_include_pad", "count_include_pad", True),
            ("divisor_override", "divisor_override", None),
        ),
    ),  # fmt: skip
    nn.AdaptiveAvgPool2d: (("output_size",), ()),
    nn.AdaptiveMaxPool2d: (("output_size",), ()),
    nn.Flatten: ((), (("start_dim", "start_dim", 1), ("end_dim", "end_dim", -1))),
    nn.Dropout: ((), (("p", "p", 0.5), *_INPLACE)),
    nn.Identity: ((), ()),
    nn.ReLU: ((), _INPLACE),
    nn.ReLU6: ((), _INPLACE),
    nn.Sigmoid: ((), ()),
    nn.Tanh: ((), ()),
    nn.SiLU: ((), _INPLACE),
    nn.Hardswish: ((), _INPLACE),
    nn.GELU: ((), (("approximate", "approximate", "none"),)),
    nn.LeakyReLU: ((), (("negative_slope", "negative_slope", 0.01), *_INPLACE)),
    nn.ELU: ((), (("alpha", "alpha", 1.0), *_INPLACE)),
    nn.Softplus: ((), (("beta", "beta", 1.0), ("threshold", "threshold", 20.0))),
}


def _layer_call(module: nn.Module, path: str) -> str:
    """`nn.Conv2d(3, 16, kernel_size=3, padding=1)`: the constructor that rebuilds the layer."""
    kind = type(module)
    if kind not in _LAYERS:
        raise CNNCoreError(
            f"the layer {path or 'model'} is a {kind.__name__}, which the PyTorch file writer "
            f"does not know; it writes {', '.join(sorted(k.__name__ for k in _LAYERS))}",
            "format",
        )  # fmt: skip
    if getattr(module, "return_indices", False):
        raise CNNCoreError(f"the pooling layer {path} returns indices", "format")
    positional, keywords = _LAYERS[kind]
    args = [repr(_pair(getattr(module, name))) for name in positional]
    for keyword, source, default in keywords:
        value = _pair(source(module) if callable(source) else getattr(module, source))
        if default is _MISSING or value != default:
            args.append(f"{keyword}={value!r}")
    return f"nn.{kind.__name__}({', '.join(args)})"


class _OneLevel(OwnThreadTracer):
    """Traces a block's own forward: every child module is a call, not inlined (other threads'
    forward passes meanwhile are not recorded)."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.root_module = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self.root_module


_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
          operator.matmul: "@"}  # fmt: skip


def _function_name(target: Callable[..., Any], where: str) -> str:
    name = getattr(target, "__name__", "")
    if getattr(torch, name, None) is target:
        return f"torch.{name}"
    if getattr(torch.nn.functional, name, None) is target:
        return f"F.{name}"
    if getattr(operator, name, None) is target:
        return f"operator.{name}"
    raise CNNCoreError(f"{where} calls {name or target!r}, which the PyTorch file writer does "
                       "not write (torch, torch.nn.functional and operator only)",
                       "format")  # fmt: skip


def _argument(value: Any, where: str) -> str:
    if isinstance(value, fx.Node):
        return value.name
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_argument(v, where) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, torch.dtype):
        return str(value)  # "torch.float32"
    if isinstance(value, slice):
        return f"slice({value.start!r}, {value.stop!r}, {value.step!r})"
    raise CNNCoreError(f"{where} passes a {type(value).__name__}, which the PyTorch file "
                       "writer does not write", "format")  # fmt: skip


def _call(node: fx.Node, where: str) -> str:
    args = [_argument(a, where) for a in node.args]
    args += [f"{k}={_argument(v, where)}" for k, v in node.kwargs.items()]
    if node.op == "call_module":
        return f"{_child(node.target)}({', '.join(args)})"
    if node.op == "call_method":
        return f"{args[0]}.{node.target}({', '.join(args[1:])})"
    if node.target in _INFIX and len(args) == 2 and not node.kwargs:
        return f"{args[0]} {_INFIX[node.target]} {args[1]}"
    if node.target is operator.getitem and len(args) == 2:
        return f"{args[0]}[{args[1]}]"
    return f"{_function_name(node.target, where)}({', '.join(args)})"


def _child(name: str) -> str:
    return f"self.{name}" if name.isidentifier() else f"getattr(self, {name!r})"


def _forward(block: nn.Module, where: str) -> list[str]:
    """The block's forward, one line per traced operation."""
    graph = traced_alone(_OneLevel(block), block)
    inputs = [n.name for n in graph.nodes if n.op == "placeholder"]
    lines = [f"    def forward(self, {', '.join(inputs)}):"]
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "get_attr":
            raise CNNCoreError(f"{where or 'the model'} holds a tensor of its own "
                               f"({node.target}) outside its layers", "format")  # fmt: skip
        if node.op == "output":
            lines.append(f"        return {_argument(node.args[0], where)}")
        else:
            lines.append(f"        {node.name} = {_call(node, where)}")
    return lines


@dataclass
class _Writer:
    """Collects the block classes while the model's construction is written out."""

    classes: dict[str, tuple[str, ...]]  # class name → its lines (without the header)
    by_body: dict[tuple[str, tuple[str, ...]], str]  # (zoo class, body) → class name

    def block_class(self, module: nn.Module, path: str) -> str:
        names = [name for name, _ in module.named_children()]
        signature = f"    def __init__(self, {', '.join(f'{n}: nn.Module' for n in names)}):"
        if len(signature) > 100:  # one argument a line, as a formatter would
            signature = "\n".join(
                [
                    "    def __init__(",
                    "        self,",
                    *(f"        {n}: nn.Module," for n in names),
                    "    ):",
                ]
            )
        body = (
            signature,
            "        super().__init__()",
            *(f"        self.{n} = {n}" for n in names),
            "",
            *_forward(module, path),
        )
        key = (type(module).__name__, body)
        if key not in self.by_body:
            base, number = type(module).__name__, 1
            name = base
            while name in self.classes:
                number += 1
                name = f"{base}{number}"
            self.by_body[key] = name
            self.classes[name] = body
        return self.by_body[key]

    def build(self, module: nn.Module, path: str, indent: int) -> str:
        """The expression that rebuilds `module` (a layer, a Sequential or a block)."""
        children = list(module.named_children())
        if not children:
            if next(module.parameters(recurse=False), None) is None and not isinstance(
                module, tuple(_LAYERS)
            ):
                raise CNNCoreError(f"{path} is an empty {type(module).__name__}", "format")
            return _layer_call(module, path)
        for name, _ in children:
            if not name.isidentifier() and not name.isdigit():
                raise CNNCoreError(f"{path}.{name} is not a name Python can write", "format")
        own = [n for n, _ in module.named_parameters(recurse=False)]
        own += [n for n, _ in module.named_buffers(recurse=False)]
        if own:
            raise CNNCoreError(f"{path or 'the model'} holds {own[0]} outside its layers",
                               "format")  # fmt: skip
        pad = "    " * (indent + 1)
        parts = [(name, self.build(child, f"{path}.{name}" if path else name, indent + 1))
                 for name, child in children]  # fmt: skip
        # A Sequential subclass that keeps Sequential's forward (the zoo's ConvBNActivation)
        # is a Sequential to whoever runs it: same calls, same parameter names.
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            if [n for n, _ in parts] == [str(i) for i in range(len(parts))]:
                # each item's dotted name, as in the weights file (`features.0.weight`)
                inner = "".join(f"\n{pad}{code},  # {path}.{n}" if "\n" not in code
                                else f"\n{pad}{code}," for n, code in parts)  # fmt: skip
                return f"nn.Sequential({inner}\n{'    ' * indent})"
            inner = "".join(f"\n{pad}({n!r}, {code})," for n, code in parts)
            return f"nn.Sequential(OrderedDict([{inner}\n{'    ' * indent}]))"
        if any(name.isdigit() for name, _ in parts):
            raise CNNCoreError(f"{path} numbers its layers but is not a Sequential", "format")
        name = self.block_class(module, path)
        inner = "".join(f"\n{pad}{n}={code}," for n, code in parts)
        return f"{name}({inner}\n{'    ' * indent})"


def _model_class(model: nn.Module, writer: _Writer) -> list[str]:
    """The network's own class: it builds its layers in __init__, as the zoo's does."""
    name = type(model).__name__
    lines = [f"class {name}(nn.Module):", "    def __init__(self):", "        super().__init__()"]
    for child_name, child in model.named_children():
        lines.append(f"        self.{child_name} = {writer.build(child, child_name, 2)}")
    own = [n for n, _ in model.named_parameters(recurse=False)]
    if own or next(model.named_buffers(recurse=False), None) is not None:
        raise CNNCoreError(f"the model holds {own[0] if own else 'a buffer'} outside its "
                           "layers", "format")  # fmt: skip
    return [*lines, "", *_forward(model, "")]


_MAIN = '''
def load(path: str | Path = WEIGHTS) -> {model_class}:
    """The trained network in eval mode, its weights read from the safetensors file."""
    model = {model_class}()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def read_input(path: str | None) -> torch.Tensor:
    """A 1×C×H×W input: a tensor file (safetensors, its first tensor, already normalised as
    below), or without a file one drawn from a fixed seed (torch.manual_seed(0))."""
    if path is None:
        torch.manual_seed(0)
        return torch.randn(1, *INPUT_SHAPE)
    tensors = load_file(path)
    x = next(iter(tensors.values())).float()
    return x if x.dim() == 4 else x.unsqueeze(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="a .safetensors file holding the input tensor")
    parser.add_argument("--weights", default=str(WEIGHTS), help="the .safetensors weights")
    parser.add_argument("--json", action="store_true", help="print the logits as JSON")
    arguments = parser.parse_args()
    with torch.no_grad():
        logits = load(arguments.weights)(read_input(arguments.input))
    if arguments.json:
        print(json.dumps({{"logits": logits.tolist()}}))
    else:
        for row in logits:
            best = int(row.argmax())
            print(f"prediction: {{CLASSES[best]}} (class {{best}})")
            for number, (label, value) in enumerate(zip(CLASSES, row.tolist())):
                print(f"  {{number:>3}} {{label:<20}} {{value: .6f}}")
'''


def python_file(model: nn.Module, facts: PyFileFacts) -> str:
    """The standalone file: imports, the facts as constants, the block classes, the network's
    class, `load(path)` and a `__main__` that prints the logits of an input file or of a
    fixed-seed random input."""
    writer = _Writer({}, {})
    model_lines = _model_class(model, writer)
    blocks = [line for name, body in writer.classes.items()
              for line in (f"class {name}(nn.Module):", *body, "", "")]  # fmt: skip
    code = "\n".join([*blocks, *model_lines])
    needs_dict = "OrderedDict(" in code
    needs_operator = re.search(r"\boperator\.", code) is not None
    needs_f = re.search(r"\bF\.", code) is not None
    header = [
        f'"""{facts.title}',
        "",
        "Written by cnnviz from the trained network's structure: run it with PyTorch and",
        "safetensors alone (pip install torch safetensors).",
        "",
        f"    python {{this file}} [input.safetensors] [--weights {facts.weights_file}] [--json]",
        "",
        f"Input: N×{'×'.join(map(str, facts.input_shape))} images scaled to [0, 1], then "
        "normalised per channel",
        "as (x - MEAN) / STD. Output: one logit per class (softmax gives probabilities).",
        f"Weights: {facts.weights_file} (sha256 {facts.sha256}).",
        '"""',
        "",
        "import argparse",
        "import json",
        *(["import operator"] if needs_operator else []),
        *(["from collections import OrderedDict"] if needs_dict else []),
        "from pathlib import Path",
        "",
        "import torch",
        *(["import torch.nn.functional as F"] if needs_f else []),
        "from safetensors.torch import load_file",
        "from torch import nn",
        "",
        f"WEIGHTS = Path(__file__).with_name({facts.weights_file!r})",
        f"INPUT_SHAPE = {tuple(facts.input_shape)!r}  # channels, height, width",
        f"MEAN = {tuple(facts.mean)!r}",
        f"STD = {tuple(facts.std)!r}",
        f"CLASSES = {list(facts.labels)!r}",
        "",
        "",
    ]
    main = _MAIN.format(model_class=type(model).__name__)
    return "\n".join([*header, *blocks, *model_lines, "", "", main.lstrip("\n")])
