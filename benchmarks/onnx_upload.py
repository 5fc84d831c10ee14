"""An uploaded resnet18 ONNX: how long until it is ready, and its /features next to the zoo's.

resnet18 (seeded initialisation; torch folds no batch norm in, so both networks compute the same
layers) is exported once with torch.onnx (TorchScript exporter, opset 17, 46 MB), then sent
through the whole app in process (`TestClient`) as `POST /api/uploaded-models`: multipart
parsing, the checks, conversion, writing to a temporary data folder, registration. "Ready" is the
201 answer: the next request may name the model. The server's start-up warm-up (app/warmup.py,
which imports a one-conv ONNX model) runs first, as in `cnnviz serve`; each upload is timed.

Then `POST /api/features` (sample `china`, learned mode) for `resnet18` and for the uploaded
`onnx_<id>`, alternating in rounds after a warm-up, each from an empty result store (so each
runs the forward pass); both models stay built, as the server keeps them. Targets (issue 16):
ready ≤ 3 s; uploaded / zoo ≤ 1.2 (medians of the same rounds). Exit status 1 when missed.

    .venv/bin/python benchmarks/onnx_upload.py [--rounds 7] [--uploads 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from app.deps import settings_dep  # noqa: E402
from app.feature_cache import get_feature_cache  # noqa: E402
from app.main import app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.uploaded_models import UploadedModels, get_uploaded_models  # noqa: E402
from app.warmup import warm_up  # noqa: E402
from benchmarks.scratch import scratch_folder  # noqa: E402
from benchmarks.timing import interleaved, seconds  # noqa: E402
from cnncore.models import build_model  # noqa: E402
from cnncore.seeding import seeded  # noqa: E402

READY_TARGET, RATIO_TARGET = 3.0, 1.2


def exported_resnet18() -> bytes:
    with seeded(0):
        model = build_model("resnet18").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                          opset_version=17, input_names=["input"])  # fmt: skip
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--uploads", type=int, default=3)
    args = parser.parse_args()
    data = exported_resnet18()
    folder = scratch_folder("cnnviz-onnx-bench-")
    settings = Settings(data_dir=folder, onnx_max_models=args.uploads + 1)
    store = UploadedModels.from_settings(settings)
    app.dependency_overrides[get_uploaded_models] = lambda: store
    app.dependency_overrides[settings_dep] = lambda: settings
    client = TestClient(app)
    names: list[str] = []
    warm_started = time.perf_counter()
    warm_up(settings)  # what a started server does in its warm-up thread (app/warmup.py)
    warm_s = time.perf_counter() - warm_started

    def upload() -> None:
        files = {"file": ("resnet18.onnx", data, "application/octet-stream")}
        answer = client.post("/api/uploaded-models", data={"name": "resnet18"}, files=files)
        assert answer.status_code == 201, answer.text
        names.append(answer.json()["model"]["model"])

    ready = [seconds(upload) for _ in range(args.uploads)]
    cache = get_feature_cache()

    def features(model: str):
        def post() -> None:
            cache.forget_results()
            answer = client.post("/api/features", data={"model": model, "sample": "china"})
            assert answer.status_code == 200, answer.text

        return post

    times = interleaved({"zoo": features("resnet18"), "uploaded": features(names[-1])},
                        args.rounds, warmup=1)  # fmt: skip
    zoo, uploaded = statistics.median(times["zoo"]), statistics.median(times["uploaded"])
    ratio = uploaded / zoo
    report = {
        "file_mb": round(len(data) / 1e6, 1),
        "server_warm_up_s": round(warm_s, 2),
        "ready_first_s": round(ready[0], 2),
        "ready_later_s": [round(t, 2) for t in ready[1:]],
        "features_zoo_ms": round(zoo * 1000),
        "features_uploaded_ms": round(uploaded * 1000),
        "ratio": round(ratio, 3),
        "rounds": args.rounds,
        "load": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))
    store.close()
    return 0 if max(ready) <= READY_TARGET and ratio <= RATIO_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
