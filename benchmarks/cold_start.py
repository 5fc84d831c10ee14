"""A cold server's first /features answer: from opening the page to the feature maps' JSON.

Each round starts a fresh `uvicorn app.main:app` (one worker, as deployed) on a free loopback
port with its own empty data folder, waits until `/api/health` answers (the server is up), waits
`--after` seconds (a visitor rarely arrives in the very same second), then asks what the page
asks, in its order: the HTML, then `/api/models`, `/api/features/samples` and
`/api/features/colormaps` together (the page's `Promise.all`), `/api/runs`, then the default
`POST /api/features` (tinyvgg, sample china). The figure is the wall time from the HTML request
to the POST's answer. Rounds alternate the server's background warm-up (app/warmup.py) on and
off (`CNNVIZ_WARMUP`), the baseline in the same run. Target (issue 13): ≤ 2 s with warm-up;
exit status 1 when missed.

    .venv/bin/python benchmarks/cold_start.py [--rounds 4] [--after 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as answer:
        return answer.read()


def post_features(base: str) -> bytes:
    boundary = uuid.uuid4().hex
    fields = {"model": "tinyvgg", "sample": "china", "mode": "learned"}
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in fields.items()) + f"--{boundary}--\r\n"  # fmt: skip
    request = urllib.request.Request(
        base + "/api/features", data=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=300) as answer:
        return answer.read()


def one_round(warmup: bool, after: float) -> tuple[float, float]:
    """(seconds until the server is up, seconds from the page request to the features answer)"""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "CNNVIZ_DATA_DIR": data, "CNNVIZ_WARMUP": str(warmup).lower(),
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        start = time.monotonic()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port),
             "--log-level", "warning"], env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            while True:
                try:
                    get(base + "/api/health")
                    break
                except OSError:
                    time.sleep(0.05)
            up = time.monotonic() - start
            time.sleep(after)
            opened = time.monotonic()
            get(base + "/features")
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(get, [base + "/api/models", base + "/api/features/samples",
                                    base + "/api/features/colormaps"]))  # fmt: skip
            get(base + "/api/runs?limit=100")
            post_features(base)
            return up, time.monotonic() - opened
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds per setting")
    parser.add_argument("--after", type=float, default=3.0, help="seconds between up and visit")
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for index in range(2 * args.rounds):
        warmup = index % 2 == 0
        results[warmup].append(one_round(warmup, args.after))
        up, first = results[warmup][-1]
        print(f"round {index + 1}: warm-up {'on ' if warmup else 'off'}  server up {up:.2f} s  "
              f"first /features answer {first:.2f} s", flush=True)  # fmt: skip
    on = statistics.median(first for _up, first in results[True])
    off = statistics.median(first for _up, first in results[False])
    print(f"median first answer: warm-up on {on:.2f} s, off {off:.2f} s (on / off {on / off:.2f}); "
          f"target ≤ {TARGET_S} s {'ok' if on <= TARGET_S else 'MISSED'}")  # fmt: skip
    raise SystemExit(0 if on <= TARGET_S else 1)


if __name__ == "__main__":
    main()
