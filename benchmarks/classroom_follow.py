"""Classroom follow mode under load: one teacher, many followers, on loopback.

Starts uvicorn (one worker, as deployed) on a free loopback port, opens one class session, connects
N followers as SSE streams (httpx, one asyncio process), and lets the teacher publish steps at the
rate follow.js may publish at most (10 per second). For every (step, follower) pair it measures
the propagation latency: the moment the teacher's POST starts to the moment the follower has
parsed the complete event. A baseline with one follower runs first, in the same run, so the
figures can be read as a ratio on whatever machine this is.

Targets (issue 7): with 100 followers, median < 250 ms, p95 < 500 ms, 0 dropped connections.
Exit status 1 when a target is missed.

    .venv/bin/python benchmarks/classroom_follow.py [--followers 100] [--steps 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sse_clients import free_port, start_server, uvicorn

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEDIAN_MS, TARGET_P95_MS = 250.0, 500.0


@dataclass
class Follower:
    received: dict[int, float] = field(default_factory=dict)  # event id → perf_counter()
    dropped: bool = False  # the stream failed or closed before the session ended
    ended: bool = False  # the server sent the `end` event


@dataclass
class Result:
    followers: int
    steps: int
    latencies_ms: list[float]
    missed: int
    dropped: int
    publish_ms: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> dict:
        return {"followers": self.followers, "steps": self.steps,
                "deliveries": len(self.latencies_ms),
                "median_ms": round(statistics.median(self.latencies_ms), 1),
                "p95_ms": round(self.quantile(0.95), 1),
                "max_ms": round(max(self.latencies_ms), 1),
                "publish_median_ms": round(statistics.median(self.publish_ms), 1),
                "missed_events": self.missed, "dropped_connections": self.dropped}


async def follow(http: httpx.AsyncClient, code: str, follower: Follower) -> None:
    """Read the stream, timestamping each event when its blank terminator line arrives."""
    event_id: int | None = None
    try:
        async with http.stream("GET", f"/api/sessions/{code}/events") as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    event_id = int(line[3:])
                elif line.startswith("event: end"):
                    follower.ended = True
                elif not line and event_id is not None:
                    follower.received[event_id] = time.perf_counter()
                    event_id = None
    except (httpx.HTTPError, ValueError):
        pass
    follower.dropped = not follower.ended


async def wait_until(predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def scenario(base_url: str, followers: int, steps: int, interval: float) -> Result:
    limits = httpx.Limits(max_connections=followers + 8, max_keepalive_connections=followers + 8)
    timeout = httpx.Timeout(10.0, read=None)  # a follower may wait long between events
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        created = (await http.post("/api/sessions", json={"page": "/conv", "state": {}})).json()
        code, headers = created["code"], {"X-Teacher-Token": created["teacher_token"]}
        crowd = [Follower() for _ in range(followers)]
        tasks = [asyncio.create_task(follow(http, code, f)) for f in crowd]
        if not await wait_until(lambda: all(1 in f.received for f in crowd), 30):
            raise RuntimeError("followers did not all connect within 30 s")
        assert (await http.get(f"/api/sessions/{code}")).json()["followers"] == followers

        sent: dict[int, float] = {}
        publish_ms: list[float] = []
        for step in range(steps):
            started = time.perf_counter()
            response = await http.post(
                f"/api/sessions/{code}/state", headers=headers,
                json={"page": f"/conv?step={step}", "state": {"kernel": 3, "stride": 1},
                      "step": step})
            publish_ms.append((time.perf_counter() - started) * 1000)
            sent[response.json()["event_id"]] = started
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
        last = max(sent)
        await wait_until(lambda: all(last in f.received for f in crowd), 10)
        await http.delete(f"/api/sessions/{code}", headers=headers)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    latencies = [(f.received[i] - t) * 1000 for f in crowd for i, t in sent.items()
                 if i in f.received]
    missed = followers * len(sent) - len(latencies)
    return Result(followers, steps, latencies, missed, sum(f.dropped for f in crowd), publish_ms)


def start(port: int, log) -> subprocess.Popen:
    env = {**os.environ, "CNNVIZ_MAX_SESSION_FOLLOWERS": "1000",
           # every follower comes from one loopback address here: lift the per-client quotas
           "CNNVIZ_CLIENT_FOLLOWS_PER_MINUTE": "100000", "CNNVIZ_CLIENT_FOLLOWER_SLOTS": "100000"}
    return start_server(uvicorn(port), port, cwd=ROOT, env=env, log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between steps")
    args = parser.parse_args(argv)

    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = start(port, log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            baseline = asyncio.run(scenario(base_url, 1, args.steps, args.interval))
            loaded = asyncio.run(scenario(base_url, args.followers, args.steps, args.interval))
        finally:
            server.terminate()
            server.wait(10)
            log.seek(0)
            errors = log.read().decode(errors="replace").strip()
    report = {"baseline": baseline.summary(), "load": loaded.summary(), "cpus": os.cpu_count(),
              "ratio_median": round(statistics.median(loaded.latencies_ms)
                                    / statistics.median(baseline.latencies_ms), 2),
              "ratio_p95": round(loaded.quantile(0.95) / baseline.quantile(0.95), 2)}
    print(json.dumps(report, indent=2))
    if errors:
        print("server log:\n" + errors[-2000:], file=sys.stderr)
    load = report["load"]
    ok = (load["median_ms"] < TARGET_MEDIAN_MS and load["p95_ms"] < TARGET_P95_MS
          and load["dropped_connections"] == 0 and load["missed_events"] == 0)
    print(f"{'PASS' if ok else 'FAIL'}: {args.followers} followers, median {load['median_ms']} ms "
          f"(< {TARGET_MEDIAN_MS:g}), p95 {load['p95_ms']} ms (< {TARGET_P95_MS:g}), "
          f"{load['dropped_connections']} dropped, {load['missed_events']} missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
