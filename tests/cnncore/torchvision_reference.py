"""torchvision as an independent reference for the published-weights tests (dev only).

The registry's torchvision 0.28.0 wheel is built against a CUDA torch: importing the package
loads its compiled ops (`_C.so`) and registers fake kernels for them, which fails beside the CPU
torch. `torchvision.models` needs none of that, so the package is entered without running its
`__init__` (a bare module whose `__path__` is the wheel's folder). The wheel is found through
`CNNVIZ_TORCHVISION_WHEEL` or in `~/.cache/cnnviz/` (`make torchvision-reference` fetches it with
`pip download torchvision==0.28.0 --no-deps`); an installed torchvision is used as it is.

Without either, the tests use `fixtures/torchvision_layouts.json`, written from this reference by
`python tests/cnncore/torchvision_reference.py`: every key, shape and dtype of the six published
layouts and torchvision's logits for a generated state dict (`generated_state`) and input.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures" / "torchvision_layouts.json"
MODELS = ("alexnet", "vgg16", "resnet18", "resnet50", "googlenet", "mobilenet_v2")
INPUT_SEED, STATE_SEED = 7, 11
CACHE = Path.home() / ".cache" / "cnnviz"


def _wheel() -> Path | None:
    given = os.environ.get("CNNVIZ_TORCHVISION_WHEEL")
    if given:
        return Path(given)
    found = sorted(glob.glob(str(CACHE / "torchvision-0.28.0-*.whl")))
    return Path(found[-1]) if found else None


def torchvision_models() -> types.ModuleType | None:
    """`torchvision.models` (and `torchvision.transforms`), or None when no wheel is here."""
    if "torchvision" in sys.modules:
        import torchvision.models

        return torchvision.models
    try:
        import torchvision.models  # an installed, working torchvision

        return torchvision.models
    except Exception:  # noqa: BLE001 - not installed, or its compiled ops do not load
        sys.modules.pop("torchvision", None)
    wheel = _wheel()
    if wheel is None or not wheel.is_file():
        return None
    folder = Path(tempfile.gettempdir()) / f"cnnviz-{wheel.stem}"
    if not (folder / "torchvision" / "models").is_dir():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(folder)
    package = types.ModuleType("torchvision")
    package.__path__ = [str(folder / "torchvision")]  # submodules import; __init__ never runs
    sys.modules["torchvision"] = package
    import torchvision.models

    return torchvision.models


def reference_model(models: types.ModuleType, name: str) -> torch.nn.Module:
    """torchvision's model laid out as its published ImageNet file (googlenet: with the
    auxiliary classifiers and `transform_input`, as `googlenet(weights=...)` builds it)."""
    if name == "googlenet":
        return models.googlenet(aux_logits=True, transform_input=True, init_weights=False)
    return getattr(models, name)()


def generated_state(layout: dict[str, tuple[list[int], str]]) -> dict[str, torch.Tensor]:
    """Random values in the exact layout, scaled so that activations stay of order one through
    a deep network (weights ~ N(0, 1/fan_in), BN variances in [0.5, 1.5])."""
    generator = torch.Generator().manual_seed(STATE_SEED)
    state = {}
    for key, (shape, dtype) in layout.items():
        if dtype == "int64":
            state[key] = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif len(shape) > 1:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


def reference_input() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(INPUT_SEED))


def layout_of(model: torch.nn.Module) -> dict[str, tuple[list[int], str]]:
    return {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in
            model.state_dict().items()}  # fmt: skip


def write_fixtures() -> None:
    models = torchvision_models()
    assert models is not None, "no torchvision: set CNNVIZ_TORCHVISION_WHEEL"
    fixtures = {}
    for name in MODELS:
        model = reference_model(models, name).eval()
        layout = layout_of(model)
        model.load_state_dict(generated_state(layout), strict=True)
        with torch.no_grad():
            logits = model(reference_input())[0]
        fixtures[name] = {"layout": layout, "logits": logits.tolist()}
    FIXTURES.parent.mkdir(exist_ok=True)
    FIXTURES.write_text(json.dumps(fixtures, separators=(",", ":")))


if __name__ == "__main__":
    write_fixtures()
