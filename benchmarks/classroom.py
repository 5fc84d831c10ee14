"""A classroom on one server: 50 students browsing, tracing, uploading and watching a live run.

Loopback only, bounded in time. Starts uvicorn (one worker, as deployed; its own data folder in a
temporary directory) on a free port, starts a LeNet-5 training run and measures its throughput
alone (the baseline), then lets N students loose for `--duration` seconds while the run goes on
(a new run starts whenever one ends). Each student is one asyncio task pair with its own loopback
address (127.0.0.x, so the per-client limits see N clients, as in a real room), arriving over
the first `--arrival` seconds:

* a Server-Sent Events subscription to the live run, re-opened when a run ends;
* an action loop with 0.5–3 s of think time: a page load (HTML, then its CSS/JS like a browser),
  a conv trace, a feature-map upload of a fresh picture (then one of its PNGs), or a run status.

Reported: requests per second, p50/p95/p99 per endpoint, errors (transport failures and 5xx and
unexpected 4xx; 429s counted apart), SSE events delivered, the run's images/s alone vs under
load, and the server's RSS (and its training workers') at the start of load, after a warm-up
minute and at the end. `--soak 600` is the 10-minute soak (RSS sampled every 30 s).

    .venv/bin/python benchmarks/classroom.py [--students 50] [--duration 120] [--soak 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sse_clients import free_port, process_cpu_seconds, start_server  # noqa: E402

from app.routes.pages import PAGES  # noqa: E402  (the page table, so every page is visited)

RUN_CONFIG = {"label": "classroom load", "model": "lenet5", "data": {"name": "mnist5k"},
              "epochs": 50, "batch_size": 64, "log_every": 5}  # fmt: skip
ASSET = re.compile(r'(?:src|href)="(/static/[^"]+\.(?:js|css))"')
WARM_UP_S = 60.0
ACTIVE = ("queued", "running", "paused")
KEEP_ALIVE_S = 5  # uvicorn's default --timeout-keep-alive


@dataclass
class Tally:
    """Everything measured, shared by the students (one event loop: no locks needed)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    throttled: int = 0
    resent: int = 0  # requests resent once after a closed keep-alive connection
    sse_events: int = 0
    sse_streams: int = 0
    examples: list[str] = field(default_factory=list)

    def record(self, label: str, started: float, response: httpx.Response | None,
               problem: str = "") -> None:  # fmt: skip
        self.latencies[label].append((time.perf_counter() - started) * 1000)
        if response is not None and response.status_code == 429:
            self.throttled += 1
        elif response is None or response.status_code >= 400:
            self.errors[label] += 1
            if len(self.examples) < 10:
                status = response.status_code if response is not None else "-"
                text = response.text[:160] if response is not None else problem
                self.examples.append(f"{label} {status} {text}")


@dataclass
class Classroom:
    base_url: str
    tally: Tally = field(default_factory=Tally)
    run_id: str = ""
    run_token: str = ""  # the run's control token (X-Run-Token), for stopping it
    run_changed: asyncio.Event = field(default_factory=asyncio.Event)
    throughput: list[tuple[float, float]] = field(default_factory=list)  # (time, images/s)
    cpu_throughput: list[tuple[float, float]] = field(default_factory=list)  # images/CPU s
    run_cpu: list[tuple[float, str, float]] = field(default_factory=list)  # (time, run, cpu_s)
    run_steps: list[tuple[float, str, float]] = field(default_factory=list)  # (time, run, step)
    runs_started: int = 0
    runs: list[dict] = field(default_factory=list)  # each finished run: id, status, error
    stopping: bool = False


def picture(rng: random.Random) -> bytes:
    """A fresh 96×96 photo-like picture (smooth blobs), so no upload is served from the cache."""
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    channels = [np.sin(rng.uniform(2, 9) * xx + rng.uniform(0, 6)) *
                np.cos(rng.uniform(2, 9) * yy + rng.uniform(0, 6)) for _ in range(3)]  # fmt: skip
    pixels = ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# A request on a reused keep-alive connection that the server closed meanwhile fails before any
# response byte; browsers then resend it once on a new connection (Chromium does for every
# method), so the simulated students do too, and such resends are counted apart.
RESENT = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


async def timed(room: Classroom, http: httpx.AsyncClient, label: str, method: str, url: str,
                **kwargs) -> httpx.Response | None:  # fmt: skip
    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            response = await http.request(method, url, **kwargs)
            break
        except RESENT as exc:
            if attempt == 2:
                room.tally.record(label, started, None, f"{type(exc).__name__}: {exc}")
                return None
            room.tally.resent += 1
        except httpx.HTTPError as exc:
            room.tally.record(label, started, None, f"{type(exc).__name__}: {exc}")
            return None
    room.tally.record(label, started, response)
    return response


async def load_page(room: Classroom, http: httpx.AsyncClient, rng: random.Random) -> None:
    page = await timed(room, http, "GET page", "GET", rng.choice(list(PAGES)))
    if page is not None and page.status_code == 200:
        assets = sorted(set(ASSET.findall(page.text)))
        await asyncio.gather(*(timed(room, http, "GET static", "GET", a) for a in assets))


async def conv_trace(room: Classroom, http: httpx.AsyncClient, rng: random.Random) -> None:
    size, k = rng.choice((5, 7, 9)), rng.choice((2, 3))
    body = {"input": [[[rng.randint(-3, 3) for _ in range(size)] for _ in range(size)]],
            "kernels": [[[[rng.randint(-1, 1) for _ in range(k)] for _ in range(k)]]],
            "stride": rng.choice((1, 2)), "padding": rng.choice((0, 1))}  # fmt: skip
    await timed(room, http, "POST /api/conv/trace", "POST", "/api/conv/trace", json=body)


async def feature_maps(room: Classroom, http: httpx.AsyncClient, rng: random.Random) -> None:
    files = {"image": ("photo.png", picture(rng), "image/png")}
    fields = {"model": "lenet5", "mode": rng.choice(("learned", "learned", "handcrafted"))}
    answer = await timed(room, http, "POST /api/features", "POST", "/api/features",
                         data=fields, files=files)  # fmt: skip
    if answer is not None and answer.status_code == 200:
        layer = rng.choice(answer.json()["layers"])
        await timed(room, http, "GET feature PNG", "GET", layer["url"])


async def run_status(room: Classroom, http: httpx.AsyncClient, rng: random.Random) -> None:
    if room.run_id:
        await timed(room, http, "GET /api/runs/{id}", "GET", f"/api/runs/{room.run_id}")


ACTIONS = ((load_page, 0.35), (conv_trace, 0.30), (feature_maps, 0.20), (run_status, 0.15))


def client_for(room: Classroom, address: str, read_timeout: float | None) -> httpx.AsyncClient:
    """A browser-like client on its own loopback address. Idle connections are dropped after
    4 s, before uvicorn's 5 s keep-alive ends them: reusing one the server is closing fails
    without a response (a browser silently retries; httpx would count an error)."""
    limits = httpx.Limits(max_connections=6, keepalive_expiry=KEEP_ALIVE_S - 1)
    transport = httpx.AsyncHTTPTransport(local_address=address, limits=limits)
    timeout = httpx.Timeout(30.0, read=read_timeout)
    return httpx.AsyncClient(base_url=room.base_url, transport=transport, timeout=timeout)


async def student_actions(room: Classroom, address: str, seed: int, until: float,
                          arrival: float) -> None:  # fmt: skip
    rng = random.Random(seed)
    actions, weights = zip(*ACTIONS, strict=True)
    await asyncio.sleep(rng.uniform(0, arrival))  # students come in over the first seconds
    async with client_for(room, address, 60.0) as http:
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await rng.choices(actions, weights)[0](room, http, rng)


async def read_events(http: httpx.AsyncClient, url: str, on_event, label: str,
                      room: Classroom) -> bool:  # fmt: skip
    """Read one SSE stream, calling on_event(kind, data) per complete event; True when the
    server closed it (the run ended), False when it failed."""
    started, first, kind, data = time.perf_counter(), True, "message", []
    try:
        async with http.stream("GET", url) as stream:
            if stream.status_code != 200:
                await stream.aread()
                room.tally.record(label, started, stream)
                return False
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    if first:
                        room.tally.record(label, started, stream)
                        first = False
                    on_event(kind, "\n".join(data))
                    kind, data = "message", []
    except httpx.HTTPError as exc:
        if not room.stopping:
            room.tally.record(label, started, None, f"{type(exc).__name__}: {exc}")
        return False
    return True


async def student_watches(room: Classroom, address: str, seed: int, until: float,
                          arrival: float) -> None:  # fmt: skip
    def count(_kind: str, _data: str) -> None:
        room.tally.sse_events += 1

    await asyncio.sleep(random.Random(seed).uniform(0, arrival))  # same moment as the actions
    async with client_for(room, address, None) as http:
        while time.monotonic() < until and not room.stopping:
            room.tally.sse_streams += 1
            watched = room.run_id
            url = f"/api/runs/{watched}/events"
            task = asyncio.create_task(read_events(http, url, count, "SSE first event", room))
            while not task.done() and time.monotonic() < until and room.run_id == watched:
                await asyncio.sleep(0.5)
            task.cancel()
            closed_by_server = (await asyncio.gather(task, return_exceptions=True))[0] is True
            while closed_by_server and room.run_id == watched and time.monotonic() < until:
                await asyncio.sleep(0.5)  # the run ended: wait for the next one


async def keep_a_run_going(room: Classroom, until: float) -> None:
    """Start runs one after another; record the images/s of each step event."""

    last: dict = {}

    def on_event(kind: str, data: str) -> None:
        if '"kind":"step"' not in data:  # run events carry their kind inside the JSON
            return
        event, now = json.loads(data), time.monotonic()
        if event["step"] <= last.get("step", -1):
            return  # replayed by a re-opened stream
        if event.get("images_per_second"):
            room.throughput.append((now, float(event["images_per_second"])))
        # Images per CPU second of the worker (`cpu_s`, when the worker reports it): the cost
        # of training itself, apart from how much of the shared CPU the worker was given.
        room.run_steps.append((now, room.run_id, float(event["step"])))
        if event.get("cpu_s"):
            room.run_cpu.append((now, room.run_id, float(event["cpu_s"])))
        if last.get("epoch") == event["epoch"] and event.get("cpu_s") and last.get("cpu_s"):
            spent = event["cpu_s"] - last["cpu_s"]
            if spent > 0:
                images = (event["step"] - last["step"]) * RUN_CONFIG["batch_size"]
                room.cpu_throughput.append((now, images / spent))
        last.update(event)

    monitor = httpx.AsyncClient(base_url=room.base_url, timeout=httpx.Timeout(30, read=None))
    async with monitor as http:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                created = await http.post("/api/runs", json=RUN_CONFIG)
            except httpx.HTTPError as exc:
                room.tally.record("POST /api/runs", started, None, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(2.0)
                continue
            room.tally.record("POST /api/runs", started, created)
            if created.status_code != 201:
                await asyncio.sleep(2.0)
                continue
            run_id = created.json()["id"]
            room.run_id, room.runs_started = run_id, room.runs_started + 1
            room.run_token = created.json()["owner_token"]
            room.run_changed.set()
            last.clear()
            url = f"/api/runs/{run_id}/events"
            reader = asyncio.create_task(read_events(http, url, on_event, "monitor", room))
            # The status as well as the stream: a run that ends is replaced even if its
            # stream failed to say so, and a broken stream does not end the run.
            status = "running"
            while time.monotonic() < until and status in ACTIVE:
                await asyncio.sleep(2.0)
                if reader.done():  # re-open a broken stream after the last event it gave
                    reader = asyncio.create_task(read_events(http, url, on_event, "monitor", room))
                answer = await timed(room, http, "GET /api/runs/{id}", "GET", f"/api/runs/{run_id}")
                status = answer.json()["status"] if answer and answer.status_code == 200 else status
            if status in ACTIVE:
                await timed(room, http, "POST stop", "POST", f"/api/runs/{run_id}/stop",
                            headers={"X-Run-Token": room.run_token})
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if status not in ACTIVE:  # ended by itself (the last run is recorded at the end)
                record = (await http.get(f"/api/runs/{run_id}")).json()
                room.runs.append({k: record[k] for k in ("id", "status", "error", "last_event_id")})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """Every process started under `pid` (the run workers are forked by a forkserver child)."""
    found = []
    with contextlib.suppress(OSError):  # a process may end while it is being listed
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                found += [child, *descendants(child)]
    return found


def memory(pid: int) -> dict[str, float]:
    workers = 0
    for child in descendants(pid):
        with contextlib.suppress(OSError):  # a worker may end between listing and reading
            workers += rss_kib(child)
    return {
        "server_mb": round(rss_kib(pid) / 1024, 1),
        "run_processes_mb": round(workers / 1024, 1),
    }


def cpu_now(pid: int) -> dict[str, float]:
    """CPU seconds so far of the server process and of this client (the students)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"server": process_cpu_seconds(pid), "client": own.ru_utime + own.ru_stime}


def run_progress(samples: list[tuple[float, str, float]], start: float, end: float) -> float:
    """How far a counter of the runs (`cpu_s`, `step`) went between two moments, all runs."""
    seen: dict[str, list[float]] = defaultdict(list)
    for moment, run_id, value in samples:
        if start <= moment <= end:
            seen[run_id].append(value)
    return sum(max(v) - min(v) for v in seen.values())


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {"n": len(ordered), "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1], 1)}  # fmt: skip


def median_speed(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    inside = [speed for moment, speed in samples if start <= moment < end]
    return round(statistics.median(inside), 1) if inside else None


async def classroom(base_url: str, pid: int, students: int, duration: float,
                    baseline_s: float, sample_every: float, arrival: float) -> dict:  # fmt: skip
    room = Classroom(base_url)
    end = time.monotonic() + baseline_s + duration + 5
    keeper = asyncio.create_task(keep_a_run_going(room, end))
    await asyncio.wait_for(room.run_changed.wait(), 120)
    baseline_start = time.monotonic() + 5  # the run's first steps load data and warm up
    await asyncio.sleep(baseline_s)
    load_start = time.monotonic()
    until = load_start + duration
    rss = [{"t_s": 0, **memory(pid)}]
    cpu_start = cpu_now(pid)
    crowd = [f"127.0.0.{10 + i}" for i in range(students)]
    tasks = [
        asyncio.create_task(job(room, address, seed, until, arrival))
        for seed, address in enumerate(crowd)
        for job in (student_actions, student_watches)
    ]
    while time.monotonic() < until:
        await asyncio.sleep(min(sample_every, max(0.0, until - time.monotonic())))
        rss.append({"t_s": round(time.monotonic() - load_start), **memory(pid)})
    await asyncio.wait_for(asyncio.gather(*tasks), 90)
    load_end = time.monotonic()
    cpu_end = cpu_now(pid)
    room.stopping = True
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:  # leave nothing running
        await http.post(f"/api/runs/{room.run_id}/stop", headers={"X-Run-Token": room.run_token})
        record = (await http.get(f"/api/runs/{room.run_id}")).json()
        room.runs.append({k: record[k] for k in ("id", "status", "error", "last_event_id")})

    tally, seconds = room.tally, load_end - load_start
    requests = sum(len(v) for k, v in tally.latencies.items() if k != "SSE first event")
    warm = next((r for r in rss if r["t_s"] >= WARM_UP_S), rss[-1])
    # Images trained per wall-clock second, evaluation and checkpoints included: what a class
    # watching the run sees; then the per-step figures the trainer reports.
    batch = RUN_CONFIG["batch_size"]
    alone_s, loaded_s = load_start - baseline_start, load_end - load_start
    alone = run_progress(room.run_steps, baseline_start, load_start) * batch / alone_s
    loaded = run_progress(room.run_steps, load_start, load_end) * batch / loaded_s
    ratio = round(loaded / alone, 2) if alone else None
    overall = {"alone": round(alone, 1), "under_load": round(loaded, 1), "ratio": ratio}
    training = {"overall_images_per_s": overall}
    for name, samples in (("step_images_per_s", room.throughput),
                          ("images_per_cpu_s", room.cpu_throughput)):  # fmt: skip
        alone = median_speed(samples, baseline_start, load_start)
        loaded = median_speed(samples, load_start, load_end)
        ratio = round(loaded / alone, 2) if alone and loaded else None
        training[name] = {"alone": alone, "under_load": loaded, "ratio": ratio}
    return {
        "students": students, "arrival_s": arrival, "duration_s": round(seconds, 1),
        "cpus": os.cpu_count(),
        "requests": requests, "requests_per_s": round(requests / seconds, 1),
        "errors": sum(tally.errors.values()), "errors_by_endpoint": dict(tally.errors),
        "throttled_429": tally.throttled, "resent_after_closed_keep_alive": tally.resent,
        "error_examples": tally.examples,
        # cores busy on average over the load: the server process, the simulated students
        # (they share the machine), the training workers (from their own cpu_s)
        "cores_used": {
            **{k: round((cpu_end[k] - cpu_start[k]) / seconds, 2) for k in cpu_end},
            "runs": round(run_progress(room.run_cpu, load_start, load_end) / seconds, 2),
        },
        "sse_streams": tally.sse_streams, "sse_events": tally.sse_events,
        "endpoints": {k: quantiles(v) for k, v in sorted(tally.latencies.items())},
        "training": training,
        "runs_started": room.runs_started, "runs": room.runs,
        "rss": {"start": rss[0], "after_warm_up": warm, "end": rss[-1],
                "growth_from_start_pct": round(100 * (rss[-1]["server_mb"] / rss[0]["server_mb"]
                                                      - 1), 1),
                "growth_after_warm_up_pct": round(100 * (rss[-1]["server_mb"] / warm["server_mb"]
                                                         - 1), 1),
                "samples": rss},
    }  # fmt: skip


def serve(port: int, data_dir: str, log, extra_env: dict[str, str],
          probe: list[str] | None = None) -> subprocess.Popen:  # fmt: skip
    """uvicorn in its own process (one worker: the process that answers is the one measured),
    started by benchmarks/server_memory.py as `cnnviz serve` would start it; `probe`: its
    options for sampling memory from inside."""
    env = {**os.environ, "CNNVIZ_DATA_DIR": data_dir, "PYTHONPATH": str(ROOT),
           # one loopback address stands for the whole class: no per-client quotas in the way
           "CNNVIZ_CLIENT_RUNS_PER_HOUR": "100000", "CNNVIZ_CLIENT_FOLLOWS_PER_MINUTE": "100000",
           "CNNVIZ_CLIENT_FOLLOWER_SLOTS": "100000", **extra_env}
    command = [sys.executable, str(ROOT / "benchmarks" / "server_memory.py"), "serve",
               *(probe or []), "--port", str(port)]  # fmt: skip
    return start_server(command, port, cwd=ROOT, env=env, log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--soak", type=float, help="a soak of this many seconds (e.g. 600)")
    parser.add_argument("--baseline", type=float, default=25.0, help="seconds of run alone")
    parser.add_argument("--arrival", type=float, default=10.0,
                        help="students arrive spread over this many seconds")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=RUN_CONFIG["epochs"],
                        help="epochs of each run (a new one starts when one ends)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the server (repeatable)")  # fmt: skip
    parser.add_argument("--probe", nargs=argparse.REMAINDER, metavar="OPTION",
                        help="last: run the server under benchmarks/server_memory.py with these "
                        "options (--out DIR [--trace-from S] [--snapshot-at S] ...)")  # fmt: skip
    args = parser.parse_args(argv)
    duration = args.soak or args.duration
    RUN_CONFIG["epochs"] = args.epochs
    sample_every = 30.0 if args.soak else 10.0

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cnnviz-classroom-") as data_dir, \
            tempfile.TemporaryFile() as log:  # fmt: skip
        server_env = dict(item.split("=", 1) for item in args.server_env)
        server = serve(port, data_dir, log, server_env, args.probe)
        try:
            report = asyncio.run(classroom(f"http://127.0.0.1:{port}", server.pid,
                                           args.students, duration, args.baseline,
                                           sample_every, args.arrival))  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)
            log.seek(0)
            server_log = log.read().decode(errors="replace").strip()
    report["server_env"] = server_env
    report["server_log_tail"] = server_log[-3000:]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    rss = report["rss"]
    print(
        f"{report['requests']} requests ({report['requests_per_s']}/s), "
        f"{report['errors']} errors, {report['throttled_429']} throttled; training "
        f"{report['training']['overall_images_per_s']}; server RSS "
        f"{rss['start']['server_mb']} → {rss['end']['server_mb']} MB",
        file=sys.stderr,
    )
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
