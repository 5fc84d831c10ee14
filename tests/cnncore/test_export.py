"""Exports of a trained run (cnncore.export) against the network they come from: the ONNX file
run by onnxruntime and imported again by cnnviz's own importer, the standalone PyTorch file run
in a clean interpreter (torch and safetensors only), the safetensors tensors and the model
card's facts — for every architecture a run can train, with the run switches (batch norm,
dropout, another activation) that change its structure."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import zipfile

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import load, save_file
from torch import nn

from app.settings import Settings
from cnncore.checkpoint import Checkpoint
from cnncore.errors import CNNCoreError
from cnncore.export.bundle import RunFacts, export_run, file_names
from cnncore.export.onnx_file import OPSET, onnx_bytes
from cnncore.export.pycode import PyFileFacts, python_file
from cnncore.model_options import build_classifier, fit_input_size
from cnncore.onnx_import import OnnxLimits, import_onnx
from cnncore.training import TrainConfig
from cnncore.weights import TrainedMetadata
from tests.cnncore.standalone import standalone_logits

RUN_MODELS = Settings.model_fields["run_models"].default
RELATIVE = 1e-5


def relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    found, expected = found.double(), expected.double()
    return float((found - expected).abs().max() / expected.abs().max())


def input_shape(model: str) -> tuple[int, int, int]:
    channels = 1 if model in ("lenet5", "mlp") else 3
    side = 64 if model == "alexnet" else fit_input_size(model, channels, 28)  # its pools
    return channels, side, side


@torch.no_grad()
def trained_like(net: nn.Module, seed: int) -> nn.Module:
    """Weights and batch-norm statistics away from their initial values (an initialised
    network's logits can be ~1e-9, which would make a relative error meaningless)."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in net.state_dict().items():
        if not tensor.is_floating_point():
            continue
        if name.endswith("running_var"):
            tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
        elif tensor.dim() > 1:
            fan_in = tensor[0].numel()
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2 / fan_in) ** 0.5)
        else:
            tensor.copy_(0.5 + 0.5 * torch.rand(tensor.shape, generator=generator)
                         if name.endswith("weight") else
                         0.1 * torch.randn(tensor.shape, generator=generator))  # fmt: skip
    return net.eval()


def checkpoint_of(model: str, switches: bool, seed: int = 0) -> Checkpoint:
    shape = input_shape(model)
    labels = tuple(f"class {i}" for i in range(10))
    options = {"activation": "elu", "batch_norm": True, "dropout": 0.25} if switches else {}
    net = trained_like(build_classifier(model, shape, len(labels), **options), seed)
    config = TrainConfig.from_dict({"model": model, "epochs": 2, **options})
    trained = TrainedMetadata(
        model=model, config={"in_channels": shape[0], "num_classes": 10,
                             "input_size": shape[1:]},
        input_shape=shape, dataset="digits", labels=labels, mean=(0.5,) * shape[0],
        std=(0.25,) * shape[0], metric="accuracy", score=0.875, epochs=2, seed=0,
        train_size=800, val_size=200,
    )  # fmt: skip
    return Checkpoint(net, config, trained, {"epoch": 2}, "final.safetensors")


def facts(run_id: str = "0123456789ab") -> RunFacts:
    epochs = [{"epoch": 1, "train_loss": 1.5, "train_accuracy": 0.5, "val_loss": 1.25,
               "val_accuracy": 0.625}, {"epoch": 2, "train_loss": 0.75, "train_accuracy": 0.8,
                                        "val_loss": 0.5, "val_accuracy": 0.875}]  # fmt: skip
    return RunFacts(run_id, "my run", "completed", 1_765_000_000.0, None, epochs,
                    1_765_000_600.0)  # fmt: skip


def fixed_seed_input(shape: tuple[int, int, int]) -> torch.Tensor:
    torch.manual_seed(0)  # what the file's __main__ draws without an input file
    return torch.randn(1, *shape)


@pytest.mark.parametrize("model", RUN_MODELS)
def test_zip_round_trips_through_onnxruntime_and_a_clean_interpreter(model, tmp_path):
    checkpoint = checkpoint_of(model, switches=True)
    shape = checkpoint.trained.input_shape
    made = export_run(checkpoint, facts(), "zip")
    names = file_names(model, "0123456789ab")
    assert made.name == names["zip"]
    with zipfile.ZipFile(io.BytesIO(made.data)) as archive:
        assert sorted(archive.namelist()) == sorted(
            names[k] for k in ("py", "safetensors", "onnx", "card", "card_json")
        )
        archive.extractall(tmp_path)
    x = fixed_seed_input(shape)
    with torch.no_grad():
        expected = checkpoint.model(x)
    # the standalone file, in an interpreter without cnnviz
    logits = standalone_logits(tmp_path / names["py"])
    assert logits.shape == expected.shape
    assert relative_error(logits, expected) <= RELATIVE
    # the ONNX file, opset stated in the file
    proto = onnx.load(tmp_path / names["onnx"])
    onnx.checker.check_model(proto)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["opset"] == str(OPSET) and meta["model"] == model
    assert json.loads(meta["input_shape"]) == list(shape)
    session = onnxruntime.InferenceSession(str(tmp_path / names["onnx"]))
    (found,) = session.run(None, {"input": x.numpy()})
    assert relative_error(torch.from_numpy(found), expected) <= RELATIVE
    # the weights the card and the file name
    weights = (tmp_path / names["safetensors"]).read_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    card = json.loads((tmp_path / names["card_json"]).read_text())
    assert card["files"]["weights_sha256"] == digest == meta["weights_sha256"]
    assert digest in (tmp_path / names["py"]).read_text()
    assert card["files"]["onnx_opset"] == OPSET
    # uploaded again: cnnviz's own importer gives the run's logits (limits sized for AlexNet's
    # 57 M parameters, above the upload defaults)
    onnx_data = (tmp_path / names["onnx"]).read_bytes()
    limits = OnnxLimits(max_bytes=len(onnx_data), max_parameters=10**8)
    imported = import_onnx(onnx_data, limits)
    assert imported.input_shape == shape and imported.opset == OPSET
    with torch.no_grad():
        again = imported.module(x)
    assert relative_error(again, expected) <= RELATIVE


@pytest.mark.parametrize(
    ("side", "operators"),
    [(1, {"GatherND"}), (7, {"GatherND"}), (10, {"GatherND", "Where"}), (12, {"AveragePool"})],
)
def test_adaptive_pools_of_every_window_form_read_back(side, operators):
    """AlexNet's 6×6 adaptive pool after the maps a run's pictures leave (1×1 at 63², 7×7 at
    256², …): torch.onnx writes a GatherND of the windows, with Where masks when they differ
    in size, or an AveragePool when they tile the map; each imported gives torch's numbers at
    another batch size than the export's."""
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(6), nn.Flatten(),
                        nn.Linear(144, 5))  # fmt: skip
    net = trained_like(net, seed=side)
    imported = import_onnx(onnx_bytes(net, (3, side, side), {}), OnnxLimits())
    assert operators <= set(imported.operators)
    x = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(side))
    with torch.no_grad():
        assert relative_error(imported.module(x), net(x)) <= RELATIVE


@pytest.mark.parametrize("model", RUN_MODELS)
def test_python_file_rebuilds_the_zoo_model_as_published(model):
    """The zoo's own structure (no switches): the generated classes, executed, give the same
    parameter names and logits."""
    checkpoint = checkpoint_of(model, switches=False, seed=1)
    t = checkpoint.trained
    code = python_file(
        checkpoint.model,
        PyFileFacts("t", "w.safetensors", t.input_shape, t.labels, t.mean, t.std, "0" * 64),
    )
    namespace: dict = {"__name__": "exported", "__file__": "exported.py"}
    exec(compile(code, "exported.py", "exec"), namespace)  # our own generated file
    rebuilt = namespace[type(checkpoint.model).__name__]()
    rebuilt.load_state_dict(checkpoint.model.state_dict())
    assert list(rebuilt.state_dict()) == list(checkpoint.model.state_dict())
    x = fixed_seed_input(t.input_shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), checkpoint.model(x))
    imports = {line.split()[1] for line in code.splitlines()
               if line.startswith(("import ", "from "))}  # fmt: skip
    assert imports <= {"argparse", "json", "operator", "collections", "pathlib", "torch",
                       "torch.nn.functional", "safetensors.torch"}  # fmt: skip


def test_python_file_reads_an_input_file_and_names_the_classes(tmp_path):
    checkpoint = checkpoint_of("lenet5", switches=False)
    names = file_names("lenet5", "0123456789ab")
    for fmt in ("py", "safetensors"):
        (tmp_path / names[fmt]).write_bytes(export_run(checkpoint, facts(), fmt).data)
    x = torch.rand(3, 1, 32, 32)
    save_file({"input": x}, str(tmp_path / "batch.safetensors"))
    logits = standalone_logits(tmp_path / names["py"], "batch.safetensors")
    with torch.no_grad():
        expected = checkpoint.model(x)
    assert logits.shape == (3, 10) and relative_error(logits, expected) <= RELATIVE
    code = (tmp_path / names["py"]).read_text()
    assert "nn.Conv2d(1, 6, kernel_size=5),  # features.0\n" in code  # the run's layer names
    assert "CLASSES = ['class 0', 'class 1'," in code


def test_safetensors_holds_the_checkpoint_tensors_and_the_same_bytes_every_time():
    checkpoint = checkpoint_of("tinyvgg", switches=True)
    first = export_run(checkpoint, facts(), "safetensors").data
    assert export_run(checkpoint, facts(), "safetensors").data == first
    tensors = load(first)
    state = checkpoint.model.state_dict()
    assert list(tensors) == sorted(state) or set(tensors) == set(state)
    for name, value in state.items():
        assert torch.equal(tensors[name], value)


def test_model_card_states_data_config_metrics_and_files():
    checkpoint = checkpoint_of("lenet5", switches=False)
    checkpoint.config.data.root = "/srv/secret/datasets"  # a server path: never in the card
    card = json.loads(export_run(checkpoint, facts(), "card_json").data)
    assert card["data"]["dataset"] == "digits"
    assert card["data"]["classes"] == [f"class {i}" for i in range(10)]
    assert (card["data"]["train_size"], card["data"]["val_size"]) == (800, 200)
    assert card["metrics"]["val_score"] == 0.875 and card["metrics"]["epochs_trained"] == 2
    assert [row["val_accuracy"] for row in card["metrics"]["epochs"]] == [0.625, 0.875]
    assert card["config"]["model"] == "lenet5" and card["config"]["epochs"] == 2
    assert "root" not in card["config"]["data"]
    assert card["run"] == {"id": "0123456789ab", "label": "my run", "status": "completed",
                           "created_at": "2025-12-06T05:46:40+00:00"}  # fmt: skip
    assert card["weights_saved_at"] == "2025-12-06T05:56:40+00:00"
    assert card["input"]["mean"] == [0.5] and card["input"]["shape"] == [1, 32, 32]
    assert card["files"]["onnx_opset"] == OPSET and card["cnnviz_version"]
    markdown = export_run(checkpoint, facts(), "card").data.decode()
    assert "**87.50%**" in markdown and f"opset {OPSET}" in markdown
    assert card["model"]["width"] is None  # the zoo's own channels
    assert "| channels per convolution | as published |" in markdown.splitlines()
    assert "| 2 | 0.7500 | 0.8000 | 0.5000 | 0.8750 |" in markdown
    assert "/srv/secret" not in markdown


@pytest.mark.parametrize(("init_from", "row"), [
    ({"weights": "bundled", "model": "tinyvgg", "run_id": None, "freeze": [],
      "freeze_backbone": False, "replace_head": True},
     "| started from | the bundled weights of tinyvgg |"),
    ({"run_id": "fedcba987654", "freeze": ["features.0", "features.3"],
      "freeze_backbone": False, "replace_head": True},
     "| started from | run fedcba987654, frozen: features.0, features.3 |"),
    ({"weights": "imagenet", "model": "resnet18", "freeze_backbone": True},
     "| started from | the imagenet weights of resnet18, backbone frozen |"),
])  # fmt: skip
def test_model_card_names_where_a_transfer_run_started(init_from, row):
    """A run started from bundled or ImageNet weights said 'started from run None'."""
    checkpoint = checkpoint_of("lenet5", switches=False)
    run = dataclasses.replace(facts(), init_from=init_from)
    markdown = export_run(checkpoint, run, "card").data.decode()
    assert row in markdown.splitlines() and "None" not in markdown.split("## Data")[0]
    card = json.loads(export_run(checkpoint, run, "card_json").data)
    assert card["model"]["init_from"] == init_from


def test_unknown_format_and_unknown_layers_are_refused():
    checkpoint = checkpoint_of("lenet5", switches=False)
    with pytest.raises(CNNCoreError) as refused:
        export_run(checkpoint, facts(), "pickle")
    assert refused.value.field == "format"

    class Scaled(nn.Module):  # a block that holds a parameter of its own
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.conv(x) * self.scale

    facts_ = PyFileFacts("t", "w.safetensors", (1, 8, 8), ("a", "b"), (0.0,), (1.0,), "0")
    with pytest.raises(CNNCoreError, match="scale"):
        python_file(Scaled(), facts_)
    with pytest.raises(CNNCoreError, match="Softmax2d"):
        python_file(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softmax2d()), facts_)


def test_relative_error_is_not_vacuous():
    checkpoint = checkpoint_of("mlp", switches=False)
    x = fixed_seed_input(checkpoint.trained.input_shape)
    with torch.no_grad():
        logits = checkpoint.model(x)
    assert logits.abs().max() > 0.1  # the weights give logits far from zero
    assert relative_error(logits * (1 + 1e-4), logits) > RELATIVE
    assert math.isclose(relative_error(logits, logits), 0.0)
    assert np.isfinite(logits.numpy()).all()


def test_a_spurious_ast_error_of_the_exporter_is_tried_again(monkeypatch):
    """CPython 3.11's 'AST constructor recursion depth mismatch' (onnxscript parsing torchlib
    sources while another thread parses) failed exports in full suites, once twice in a row: the
    export is tried again after growing pauses, up to `_ATTEMPTS` times; any other SystemError,
    or the spurious one on every attempt, is not hidden."""
    from cnncore.export import onnx_file

    real, calls, pauses = torch.onnx.export, [], []
    spurious = "AST constructor recursion depth mismatch (before=147, after=65)"
    raising = {"times": 2, "message": spurious}

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= raising["times"]:
            raise SystemError(raising["message"])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", flaky)
    monkeypatch.setattr(onnx_file.time, "sleep", pauses.append)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    assert onnx.load_from_string(onnx_file.onnx_bytes(model, (1, 5, 5), {})).graph.node
    assert len(calls) == 3 and pauses == [0.2, 0.4]
    every = onnx_file._ATTEMPTS
    for times, message in [(every, spurious), (1, "some other SystemError")]:
        calls.clear()
        raising.update(times=times, message=message)
        with pytest.raises(SystemError, match=message[:20]):
            onnx_file.onnx_bytes(model, (1, 5, 5), {})
        assert len(calls) == times
