"""Cost of `POST /api/features` next to a bare forward pass of the same model on the same tensor.

The process is set up as `cnnviz serve` sets up the server (malloc arenas limited, app/memory.py).
The picture is scikit-learn's `china.jpg` (640×427 JPEG, 196 kB) sent as a multipart upload
through the whole app in process (`TestClient`: form parsing, JPEG decoding, preprocessing, the
captured forward pass, uint8 levels of every layer, the JSON answer). The model (vgg16 by default,
seeded initialisation) is built once before timing, as the server keeps it built; every timed POST
starts from an empty result store, so each one runs the forward pass. The bare forward is
`model(x)` under `torch.inference_mode()` on the very tensor the endpoint prepares, run in a worker
thread as the server runs its forward pass. The bare forward of `model.features` alone (the
convolutional part, the issue's wording) and the core alone (`learned_feature_maps`:
preprocessing, captured forward, levels, filters; no HTTP) are timed in the same rounds. Rounds
alternate their order after a warm-up; ratios are medians of the paired rounds, and a second
ratio uses CPU seconds, which other load on the machine moves less.

The answer needs every layer's shapes and ranges, not its uint8 levels: those are made right
after the answer from the held float maps, in the cache's background thread. Each round waits for
them (untimed) before the next measurement starts, so that work never runs beside a timed one;
its wall time after the answer is reported (`levels_after_answer_ms`) with the ratio of answer
plus levels to the bare forward, the work the POST used to do before answering.

Also reported: bytes of the answer, of each layer's PNGs (full atlas, thumbnail, and what opening
a layer fetches), the time to draw a layer's PNG the first time and when cached, and a repeated
POST (served from the cache). Target (issue 13, with ImageNet VGG-16; issue 4 asked ≤ 1.5):
endpoint / bare forward ≤ 1.1, the wall ratio (CPU with `--judge cpu`); exit status 1 when
missed.

    .venv/bin/python benchmarks/features_speed.py [--model vgg16] [--weights imagenet]
        [--rounds 5] [--threads 0] [--judge wall|cpu] [--server [--warm-posts 30] [--pause 0]]

`--server` measures what a browser sees instead: a real `cnnviz serve` in a subprocess, the POST
over loopback HTTP, the server process's CPU per request (benchmarks/features_served.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sklearn.datasets
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from app.feature_cache import FeatureCache, get_feature_cache  # noqa: E402
from app.main import app  # noqa: E402
from app.memory import limit_arenas  # noqa: E402
from app.settings import get_settings  # noqa: E402
from cnncore.features import learned_feature_maps, prepare_input  # noqa: E402
from cnncore.images import decode_image  # noqa: E402

TARGET = 1.1
JPEG = Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def imagenet_settings(model: str):
    """Settings whose data folder holds `model`'s generated published-layout weights (a
    temporary folder, removed when this process exits: VGG-16's file alone is 528 MB)."""
    from app.settings import Settings
    from benchmarks.scratch import scratch_folder
    from cnncore.pretrained_files import import_weights
    from tests.cnncore.torchvision_reference import FIXTURES, generated_state

    folder = scratch_folder("cnnviz-bench-")
    layout = json.loads(FIXTURES.read_text())[model]["layout"]
    torch.save(generated_state(layout), folder / f"{model}.pth")
    import_weights(folder / "weights", model, folder / f"{model}.pth")
    (folder / f"{model}.pth").unlink()
    return Settings(data_dir=folder)


def verdict(args, what: str, wall: float, cpu_name: str, cpu: float) -> None:
    """Print both ratios and exit 1 when the judged one is over the target."""
    judged = wall if args.judge == "wall" else cpu
    print(f"{what} / bare forward ({args.model}, {args.weights}, "
          f"{torch.get_num_threads()} torch threads): wall {wall:.3f}, {cpu_name} {cpu:.3f} "
          f"(medians of {args.rounds} paired rounds); target ≤ {TARGET} on {args.judge}: "
          f"{'met' if judged <= TARGET else 'MISSED'}")  # fmt: skip
    sys.exit(0 if judged <= TARGET else 1)


def served(args, settings, data: bytes, bare) -> None:
    """The `--server` measurement: report, verdict, exit status."""
    import tempfile

    from benchmarks.features_served import measure

    folder = settings.data_dir if args.weights == "imagenet" else None
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-") as empty:
        report, wall, cpu = measure(args, Path(folder or empty), data, bare)
    print(json.dumps({"model": args.model, "weights": args.weights, "torch_threads":
                      torch.get_num_threads(), **report}, indent=2))  # fmt: skip
    verdict(args, "POST over HTTP", wall, "server CPU", cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--warm-posts",
        type=int,
        default=30,
        help="--server: untimed POSTs of new pictures before the rounds (default 30: a server "
        "in use, its result stores full; 3: a server just started)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="--server: seconds idle before each round (past malloc_trim_seconds, 60 by "
        "default: each POST finds the free heap handed back, as a lone student's may)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument(
        "--weights",
        choices=("initialisation", "imagenet"),
        default="initialisation",
        help="imagenet: a generated file of torchvision's exact published layout (random "
        "values), installed in a temporary data folder and memory-mapped",
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="time the POST over loopback HTTP to a real `cnnviz serve` in a subprocess, "
        "with the server process's CPU (benchmarks/features_served.py)",
    )
    parser.add_argument(
        "--judge",
        choices=("wall", "cpu"),
        default="wall",
        help="which ratio the exit status judges (cpu: process CPU seconds, which other load "
        "on the machine moves less)",
    )
    args = parser.parse_args()
    # as `cnnviz serve` does before any thread starts (app/memory.py): without it each request
    # thread's forward pass maps and zeroes its activations anew (~30 000 page faults, VGG-16)
    limit_arenas(get_settings().malloc_arena_max)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = JPEG.read_bytes()
    settings = get_settings()
    if args.weights == "imagenet":
        settings = imagenet_settings(args.model)
    cache = FeatureCache(settings)
    app.dependency_overrides[get_feature_cache] = lambda: cache
    client = TestClient(app)
    tick = time.perf_counter()
    built = cache.model(args.model)  # built and traced once, as the server keeps it
    build_s = time.perf_counter() - tick
    model, weights = built.loaded.model, built.loaded.weights
    image = decode_image(
        data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
    )
    x = prepare_input(weights, image).tensor

    worker = ThreadPoolExecutor(1)  # the endpoint's forward also runs in a worker thread

    def forward(module) -> tuple[float, float]:
        start = clocks()
        with torch.inference_mode():
            module(x)
        return since(start)

    def bare(module) -> tuple[float, float]:
        return worker.submit(forward, module).result()

    if args.server:
        served(args, settings, data, lambda: bare(model))

    def capture() -> tuple[float, float]:
        """The core alone: the captured forward pass with every layer's levels, no HTTP."""

        def run() -> tuple[float, float]:
            start = clocks()
            learned_feature_maps(
                built.loaded, built.layers, image, max_channels=settings.feature_max_channels
            )
            return since(start)

        return worker.submit(run).result()

    settle_s: list[float] = []

    def endpoint() -> tuple[tuple[float, float], dict, int]:
        cache.forget_results()
        start = clocks()
        response = client.post(
            "/api/features",
            data={"model": args.model},
            files={"image": ("china.jpg", data, "image/jpeg")},
        )
        spent = since(start)
        tick = time.perf_counter()
        assert cache.wait_settled(600)  # the levels, made after the answer: never beside a timing
        settle_s.append(time.perf_counter() - tick)
        response.raise_for_status()
        assert response.json()["cached"] is False  # the forward pass did run
        return spent, response.json(), len(response.content)

    bare(model)  # warm-up: first-touch allocations, oneDNN kernels
    endpoint()
    rounds = []
    conv_part = getattr(model, "features", None)
    for index in range(args.rounds):
        if index % 2:  # alternate the order so a slow spell of the machine hits both
            e, body, answer_bytes = endpoint()
        b = bare(model)
        f = bare(conv_part) if conv_part is not None else (0.0, 0.0)
        c = capture()
        if not index % 2:
            e, body, answer_bytes = endpoint()
        rounds.append((b, f, e, c))
    settled = settle_s[-len(rounds) :]  # the timed rounds' (the warm-up's first)
    ratio = statistics.median(e[0] / b[0] for b, _f, e, _c in rounds)
    with_levels = statistics.median(
        (e[0] + s) / b[0] for (b, _f, e, _c), s in zip(rounds, settled, strict=True)
    )
    cpu_ratio = statistics.median(e[1] / b[1] for b, _f, e, _c in rounds)
    conv_ratio = (
        statistics.median(e[0] / f[0] for _b, f, e, _c in rounds) if conv_part is not None else None
    )

    # What showing the layers costs the browser. The strip shows a thumbnail per layer; opening
    # a layer fetches its atlas shrunk to at most 768 px and one channel at full size, in colour
    # and in grey (for the value readout) — exactly what static/js/feature_detail.js asks for.
    sizes, thumbs, opened, first_ms, again_ms = {}, {}, {}, [], []
    for layer in body["layers"]:
        tick = time.perf_counter()
        full = client.get(layer["url"])
        first_ms.append((time.perf_counter() - tick) * 1000)
        tick = time.perf_counter()
        client.get(layer["url"])
        again_ms.append((time.perf_counter() - tick) * 1000)
        sizes[layer["name"]] = len(full.content)
        thumbs[layer["name"]] = len(client.get(layer["url"] + "?max_side=160").content)
        opened[layer["name"]] = sum(
            len(client.get(layer["url"] + query).content)
            for query in ("?max_side=768", "?channel=0", "?channel=0&colormap=gray")
        )
    tick = time.perf_counter()
    repeat = client.post(
        "/api/features",
        data={"model": args.model},
        files={"image": ("china.jpg", data, "image/jpeg")},
    )
    repeat_ms = (time.perf_counter() - tick) * 1000
    assert repeat.json()["cached"] is True

    largest = max(sizes, key=sizes.get)
    report = {
        "model": args.model,
        "input": list(x.shape[1:]),
        "torch_threads": torch.get_num_threads(),
        "build_s": round(build_s, 2),
        "layers": len(body["layers"]),
        "bare_forward_ms": round(statistics.median(b[0] for b, _f, _e, _c in rounds) * 1000),
        "bare_conv_part_ms": round(statistics.median(f[0] for _b, f, _e, _c in rounds) * 1000),
        "endpoint_ms": round(statistics.median(e[0] for _b, _f, e, _c in rounds) * 1000),
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "levels_after_answer_ms": round(statistics.median(settled) * 1000),
        "ratio_answer_then_levels": round(with_levels, 3),
        "ratio_to_conv_part": round(conv_ratio, 3) if conv_ratio else None,
        "answer_bytes": answer_bytes,
        "full_atlas_bytes_median": int(statistics.median(sizes.values())),
        "full_atlas_bytes_largest": [largest, sizes[largest]],
        "open_layer_bytes_median": int(statistics.median(opened.values())),
        "open_layer_bytes_largest": max(opened.values()),
        "thumbnail_bytes_median": int(statistics.median(thumbs.values())),
        "all_thumbnails_bytes": sum(thumbs.values()),
        "png_first_draw_ms_median": round(statistics.median(first_ms), 1),
        "png_first_draw_ms_max": round(max(first_ms), 1),
        "png_cached_ms_median": round(statistics.median(again_ms), 2),
        "repeat_post_ms": round(repeat_ms, 1),
        "capture_ms": round(statistics.median(c[0] for *_x, c in rounds) * 1000),
        "capture_ratio": round(statistics.median(c[0] / b[0] for b, _f, _e, c in rounds), 3),
        # per round, ms: bare forward, bare conv part, endpoint, core capture
        "rounds": [[round(v[0] * 1000) for v in r] for r in rounds],
    }
    print(json.dumps(report, indent=2))
    verdict(args, "endpoint", ratio, "CPU", cpu_ratio)


if __name__ == "__main__":
    main()
