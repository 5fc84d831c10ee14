"""ONNX import against torch (the model that was exported) and onnxruntime (a second reader of
the same file): logits within 1e-5 relative, layers named as in the zoo."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx_fixtures import export_onnx
from torch import nn

from cnncore.features import capture_layers, trace_layers
from cnncore.models import build_model, list_models, model_input_shape
from cnncore.onnx_import import SUPPORTED_OPERATORS, OnnxLimits, import_onnx
from cnncore.seeding import seeded

try:
    import onnxruntime
except ImportError:  # pragma: no cover - a second oracle where it is installed
    onnxruntime = None

ROOMY = OnnxLimits(max_bytes=400_000_000, max_parameters=70_000_000)
# vgg16 (138 M parameters, a 540 MB file) is left out: its operators are alexnet's (Conv, Relu,
# MaxPool, AveragePool, Flatten, Gemm), and exporting it needs ~3 GB on a shared 2-core machine.
ZOO = [name for name in list_models() if name != "vgg16"]


def relative_error(expected: torch.Tensor, got: torch.Tensor) -> float:
    return float((expected - got).abs().max() / expected.abs().max().clamp_min(1e-12))


def runtime_output(data: bytes, x: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def check_exact(model: nn.Module, data: bytes, shape: tuple[int, ...], batch: int = 2):
    imported = import_onnx(data, ROOMY)
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model.eval()(x), imported.module(x)
    assert got.shape == expected.shape
    assert relative_error(expected, got) <= 1e-5
    if onnxruntime is not None:
        runtime = torch.from_numpy(runtime_output(data, x))
        assert relative_error(runtime, got) <= 1e-5
    return imported


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_round_trips_through_onnx(name, one_thread):
    with seeded(0):
        model = build_model(name)
    shape = model_input_shape(name).as_tuple()
    imported = check_exact(model, export_onnx(model, shape), shape)
    assert imported.input_shape == shape and imported.input_name == "input"
    assert imported.parameters <= sum(p.numel() for p in model.parameters())  # BN folded in
    assert set(imported.operators) <= SUPPORTED_OPERATORS


def test_batch_norm_kept_gives_the_zoo_layer_names_and_maps(one_thread):
    with seeded(0):
        model = build_model("resnet18")
    data = export_onnx(model, (3, 64, 64), keep_batch_norm=True)
    assert "BatchNormalization" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    imported = check_exact(model, data, (3, 64, 64))
    layers = trace_layers(imported.module)
    zoo_layers = trace_layers(model)
    modules = {n for n, t in layers.types.items() if t not in ("add",)}
    assert {"conv1", "bn1", "layer1.0.conv1", "layer4.1.bn2", "fc"} <= modules
    assert modules <= set(zoo_layers.layer_names)
    assert layers.types["layer2.0.downsample.1"] == "BatchNorm2d"
    x = torch.randn(1, 3, 64, 64)
    got, _ = capture_layers(layers, x)
    expected, _ = capture_layers(zoo_layers, x)
    for name in ("layer1.0.conv1", "layer2.0.bn1", "layer3.1.relu2", "avgpool"):
        assert relative_error(expected[name], got[name]) <= 1e-5, name
    assert imported.sources["layer1.0.conv1"] == "/layer1/layer1.0/conv1/Conv"


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_older_opsets(opset, one_thread):
    """Clip's bounds were attributes before opset 11; Pad's and Squeeze's changed too."""
    with seeded(0):
        model = build_model("mobilenet_v2")
    check_exact(model, export_onnx(model, (3, 64, 64), opset=opset), (3, 64, 64))


class KitchenSink(nn.Module):
    """One of each operator form exporters write that the zoo does not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.leaky = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.swish = nn.Hardswish()
        self.gate = nn.Hardsigmoid()
        self.max = nn.MaxPool2d(2, ceil_mode=True)
        self.elu = nn.ELU(0.5)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(12, 5)
        self.norm = nn.BatchNorm1d(5)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.leaky(self.conv(F.pad(x, (0, 1, 0, 1))))  # TensorFlow's "same" at stride 2
        y = self.pool(y)
        z = self.swish(self.up(y)) * self.gate(self.up(y))
        z = self.max(torch.cat([z, torch.sigmoid(z) * 0.5], dim=1))
        z = self.elu(z) - z.mean(dim=(2, 3), keepdim=True)
        z = z.view(z.size(0), -1)[:, :12]  # Shape → Gather → Concat → Reshape, then Slice
        return torch.softmax(self.drop(self.norm(self.gelu(self.fc(z)))), dim=1)


@pytest.mark.parametrize("opset", [11, 17])
def test_operator_forms_no_zoo_model_uses(opset):
    torch.manual_seed(0)
    model = KitchenSink().eval()
    model.norm.running_mean.uniform_(-1, 1)
    model.norm.running_var.uniform_(0.5, 2)
    data = export_onnx(model, (3, 17, 15), opset=opset)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"Pad", "LeakyRelu", "ConvTranspose", "Concat", "Softmax", "Gather", "Slice"} <= ops
    assert ("HardSwish" in ops) == (opset >= 14)  # before 14: HardSigmoid, Mul
    check_exact(model, data, (3, 17, 15))


def test_layers_are_modules_named_after_their_scope():
    with seeded(0):
        model = build_model("tinyvgg")
    imported = import_onnx(export_onnx(model, (3, 64, 64)))
    names = [name for name, m in imported.module.named_modules() if not list(m.children())]
    zoo = [name for name, m in model.named_modules() if not list(m.children())]
    assert names == [n for n in zoo if not n.endswith("dropout")]
    assert imported.output_shape == (10,) and imported.opset == 17
    assert imported.producer.startswith("pytorch")


class ChannelsLast(nn.Module):
    """A Keras-style network: N×H×W×C in, transposed to N×C×H×W before its first conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.relu(self.conv(x.permute(0, 3, 1, 2))))
        return self.fc(torch.flatten(y, 1))


def test_a_channels_last_input_read_through_a_transpose_becomes_nchw():
    torch.manual_seed(0)
    model = ChannelsLast().eval()
    data = export_onnx(model, (10, 12, 3))
    assert onnx.load_from_string(data).graph.node[0].op_type == "Transpose"
    imported = import_onnx(data)
    assert imported.input_shape == (3, 10, 12)
    x = torch.randn(2, 3, 10, 12)
    with torch.no_grad():
        expected = model(x.permute(0, 2, 3, 1))
        got = imported.module(x)
    assert relative_error(expected, got) <= 1e-5
    if onnxruntime is not None:
        runtime = torch.from_numpy(runtime_output(data, x.permute(0, 2, 3, 1).contiguous()))
        assert relative_error(runtime, got) <= 1e-5
    assert list(imported.sources)[0] == "conv"


def test_the_dynamo_exporter_and_its_recorded_module_paths():
    """torch.onnx.export(dynamo=True) names nodes `node_conv2d_1` and records the module path
    in metadata (`pkg.torch.onnx.name_scopes`): the layers take the zoo's names from it."""
    pytest.importorskip("onnxscript")
    with seeded(0):
        model = build_model("tinyvgg").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), dynamo=True,
                                    verbose=False)  # fmt: skip
    data = program.model_proto.SerializeToString()
    assert onnx.load_from_string(data).graph.node[0].name.startswith("node_")
    imported = check_exact(model, data, (3, 64, 64), batch=1)
    names = [name for name, m in imported.module.named_modules() if not list(m.children())]
    assert names[:5] == ["block1.conv1", "block1.relu1", "block1.conv2", "block1.relu2",
                         "block1.pool"]  # fmt: skip
