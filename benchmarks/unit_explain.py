"""A unit's computation and Grad-CAM: the two speed targets of issue 14, each against its baseline.

1. Unit panel (vgg16, 224²): after one `POST /api/features` (china.jpg, through the whole app in
   process with `TestClient`), `GET /api/features/{id}/unit` for random units of every kind of
   layer (conv, ReLU, max pool, adaptive pool, flatten, linear) reuses the float activations that
   POST kept. Reported: the POST (the baseline), each unit's latency (median, p95), their ratio.
   Target: p95 ≤ 100 ms.
2. Grad-CAM (resnet18, 224²): `cnncore.explain.explain` (Grad-CAM, Grad-CAM++, LayerCAM and
   saliency from one pass) against one forward + backward of the same model on the same tensor
   (`model(x)[0, c].backward()` with the input requiring a gradient), interleaved rounds after a
   warm-up. Target: median ratio ≤ 1.5. Exit status 1 when a target is missed.

    .venv/bin/python benchmarks/unit_explain.py [--units 40] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import sklearn.datasets
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastapi.testclient import TestClient  # noqa: E402
from timing import interleaved, spread  # noqa: E402

from app.main import app  # noqa: E402
from cnncore.explain import explain  # noqa: E402
from cnncore.features import trace_layers  # noqa: E402
from cnncore.weights import load_model  # noqa: E402


def china_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(sklearn.datasets.load_sample_image("china.jpg")).save(buffer, "JPEG")
    return buffer.getvalue()


def unit_panel(units: int) -> dict:
    client = TestClient(app)
    picture = china_jpeg()
    post = lambda: client.post(  # noqa: E731
        "/api/features", data={"model": "vgg16", "colormap": "viridis"},
        files={"image": ("china.jpg", picture, "image/jpeg")},
    )  # fmt: skip
    post()  # builds the model once, as a running server has it
    from app.feature_cache import get_feature_cache

    get_feature_cache().forget_results()
    start = time.perf_counter()
    answer = post()
    post_ms = (time.perf_counter() - start) * 1000
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rng = random.Random(14)
    layers = body["layers"]
    timings, kinds = [], {}
    for _ in range(units):
        layer = rng.choice(layers)
        shape = layer["shape"]
        if len(shape) == 3:
            query = {"channel": rng.randrange(shape[0]), "y": rng.randrange(shape[1]),
                     "x": rng.randrange(shape[2])}  # fmt: skip
        else:
            query = {"channel": rng.randrange(shape[0])}
        start = time.perf_counter()
        got = client.get(
            f"/api/features/{body['id']}/unit", params={"layer": layer["name"], **query}
        )
        timings.append((time.perf_counter() - start) * 1000)
        assert got.status_code == 200, got.text
        kinds[got.json()["kind"]] = kinds.get(got.json()["kind"], 0) + 1
    p95 = spread(timings)["p95"]
    return {"post_ms": round(post_ms, 1), "unit_ms": spread(timings), "units": units,
            "kinds": kinds, "p95_over_post": round(p95 / post_ms, 3)}  # fmt: skip


def grad_cam(rounds: int) -> dict:
    loaded = load_model("resnet18")
    layers = trace_layers(loaded.model)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)

    def forward_backward() -> None:
        inp = x.clone().requires_grad_(True)
        loaded.model(inp)[0, 1].backward()

    def cams() -> None:
        explain(layers, x, target=1, layer="layer4.1.relu2")

    times = interleaved({"forward_backward": forward_backward, "grad_cam": cams}, rounds, 2)
    ratios = [c / b for c, b in zip(times["grad_cam"], times["forward_backward"], strict=True)]
    return {"forward_backward_ms": spread([t * 1000 for t in times["forward_backward"]]),
            "grad_cam_ms": spread([t * 1000 for t in times["grad_cam"]]),
            "ratio_median": round(statistics.median(ratios), 3), "rounds": rounds}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    report = {"load": os.getloadavg(), "threads": torch.get_num_threads(),
              "unit_panel": unit_panel(args.units), "grad_cam": grad_cam(args.rounds)}  # fmt: skip
    print(json.dumps(report, indent=2))
    ok = report["unit_panel"]["unit_ms"]["p95"] <= 100 and report["grad_cam"]["ratio_median"] <= 1.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
