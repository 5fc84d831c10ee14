"""`benchmarks/features_speed.py --server`: `POST /api/features` as a browser sees it.

A real `cnnviz serve` (uvicorn, tests/app/hostile.py `serving()`: the CLI's malloc arena limit,
its own socket on loopback) runs in a subprocess on the benchmark's data folder (with the
ImageNet-layout file when `--weights imagenet`) and `CNNVIZ_TORCH_THREADS` equal to `--threads`.
The picture is china.jpg re-encoded with its own quantisation tables, its top-left 8×128 pixels
marking a new number per request (201 kB each, every one a new picture to the server's result
index, so every timed POST runs the forward pass). httpx posts it over loopback HTTP from this
process. The bare forward runs here, in a worker thread with the same torch threads on the same
3×224×224 tensor; rounds alternate their order. Two ratios, medians of the paired rounds: wall
(the POST from sending to the whole answer read, against the bare forward's wall time) and
server CPU (the server process's user + system CPU during the POST, from /proc/<pid>/stat, in
clock ticks, against the bare forward's CPU seconds). After each POST the server's levels (made
after the answer) and anything else it does are waited for, untimed, until its CPU time stops
moving. Before timing: `--warm-posts` POSTs (30 by default: the server's stores of results
then hold as many as they may, so the rounds see a server in use rather than one filling
memory it never touched; 3 for a server just started), then the server's background warm-up
(its second part starts once no request has been in progress for 1 s) is waited for the same
way over a 3 s window. The server's minor page faults during each POST are reported.
`--pause S` idles S seconds before each round: past `malloc_trim_seconds` every POST finds the
free heap handed back, as the next upload of a lone student may.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, JpegImagePlugin

from tests.app.hostile import serving

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
Clock = tuple[float, float]


def server_usage(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds, minor page faults) of process `pid` so far, all its threads,
    from one read of /proc/<pid>/stat (fields 14 + 15 and 10). A minor fault is a page the
    process touched for the first time since it got it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S, int(fields[7])


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads."""
    return server_usage(pid)[0]


def wait_quiet(pid: int, window: float = 0.3, longest: float = 180.0) -> float:
    """Return the process's CPU seconds once they did not move for `window` seconds."""
    deadline = time.monotonic() + longest
    last = server_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = server_cpu(pid)
        if now == last:
            return now
        last = now
    raise RuntimeError(f"the server kept working for {longest} s")


def pictures(jpeg: bytes) -> Iterator[bytes]:
    """The JPEG re-encoded with its own tables and sampling, its top-left corner marked with a
    new number each time."""
    original = Image.open(io.BytesIO(jpeg))
    tables, sampling = original.quantization, JpegImagePlugin.get_sampling(original)
    rgb = np.asarray(original.convert("RGB"))
    index = 0
    while True:
        changed = rgb.copy()
        for bit in range(16):  # the index in black and white 8×8 blocks: JPEG keeps them apart
            changed[:8, 8 * bit : 8 * bit + 8] = 255 * (index >> bit & 1)
        buffer = io.BytesIO()
        Image.fromarray(changed).save(buffer, "JPEG", qtables=tables, subsampling=sampling)
        yield buffer.getvalue()
        index += 1


def measure(
    args, data_dir: Path, jpeg: bytes, bare: Callable[[], Clock]
) -> tuple[dict, float, float]:
    """(report, wall ratio, server-CPU ratio) of `args.rounds` paired rounds against `bare`."""
    env = {"torch_threads": args.threads} if args.threads else {}
    uploads = pictures(jpeg)
    with serving(data_dir, **env) as (port, _log, process):
        pid = process.pid
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        settle_cpu: list[float] = []

        def post() -> tuple[float, float, float, int, int]:
            """(wall s, server CPU s, this process's CPU s, upload bytes, server page faults)
            of one POST."""
            data = next(uploads)
            (cpu, faults), own, tick = server_usage(pid), time.process_time(), time.perf_counter()
            response = client.post(
                "/api/features",
                data={"model": args.model},
                files={"image": ("china.jpg", data, "image/jpeg")},
            )
            wall = time.perf_counter() - tick
            own, (answered, faulted) = time.process_time() - own, server_usage(pid)
            faults = faulted - faults
            response.raise_for_status()
            assert response.json()["cached"] is False  # the forward pass did run
            settle_cpu.append(wait_quiet(pid) - answered)  # levels after the answer, untimed
            return wall, answered - cpu, own, len(data), faults

        for _ in range(args.warm_posts):  # a server in use: its result stores full
            bare()
            post()
        wait_quiet(pid, window=3.0)  # the server's warm-up, second part
        rounds = []
        for index in range(args.rounds):
            time.sleep(args.pause)
            if index % 2:  # alternate the order so a slow spell of the machine hits both
                e = post()
            b = bare()
            if not index % 2:
                e = post()
            rounds.append((b, e))
        client.close()
    wall = statistics.median(e[0] / b[0] for b, e in rounds)
    cpu = statistics.median(e[1] / b[1] for b, e in rounds)
    report = {
        "server": f"cnnviz serve on 127.0.0.1:{port}, CNNVIZ_TORCH_THREADS={args.threads}",
        "upload_bytes": rounds[-1][1][3],
        "bare_forward_ms": round(statistics.median(b[0] for b, _e in rounds) * 1000),
        "bare_forward_cpu_ms": round(statistics.median(b[1] for b, _e in rounds) * 1000),
        "post_ms": round(statistics.median(e[0] for _b, e in rounds) * 1000),
        "post_server_cpu_ms": round(statistics.median(e[1] for _b, e in rounds) * 1000),
        "post_client_cpu_ms": round(statistics.median(e[2] for _b, e in rounds) * 1000),
        "post_server_page_faults": round(statistics.median(e[4] for _b, e in rounds)),
        "server_cpu_after_answer_ms": round(statistics.median(settle_cpu[-len(rounds) :]) * 1000),
        "ratio": round(wall, 3),
        "server_cpu_ratio": round(cpu, 3),
        # per round, ms: bare forward wall, CPU; POST wall, server CPU; then the POST's faults
        "rounds": [[*(round(v * 1000) for v in (*b, *e[:2])), e[4]] for b, e in rounds],
    }
    return report, wall, cpu
