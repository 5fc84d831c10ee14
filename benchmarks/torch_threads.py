"""How many torch threads the web server should use: the vanishing-gradient demo over HTTP.

`POST /api/functions/vanishing` with depth 50 (the page's deepest stack) builds the stack, runs a
forward and a backward pass over 256 digits and returns every layer's gradient norm: the kind of
CPU work the server does inside a request (as the ERF and feature routes). One uvicorn server
process per thread count, each started with `CNNVIZ_TORCH_THREADS` (the setting, applied at
start-up: a thread keeps the torch thread count it first saw, so a count cannot be changed for a
running server's request threads). All servers run side by side and are measured round by
round in turn, so a burst of load from other work lands on every count alike:
- alone: one client, requests one after another;
- busy: `--clients` clients at once (the page itself sends two: the chosen and the compared
  activation), as a classroom does; the server runs them in its thread pool side by side.
Figures: median latency per request (p90 in brackets) and, when busy, requests per second.

    .venv/bin/python benchmarks/torch_threads.py [--rounds 8] [--threads 1,2] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
from sse_clients import HOST, free_port, start_server, uvicorn  # noqa: E402


def start(threads: int) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "CNNVIZ_TORCH_THREADS": str(threads)}
    return f"http://{HOST}:{port}", start_server(uvicorn(port), port, cwd=ROOT, env=env)


def timed_post(client: httpx.Client, body: dict) -> float:
    start = time.perf_counter()
    response = client.post("/api/functions/vanishing", json=body)
    response.raise_for_status()
    return time.perf_counter() - start


def requests_in_turn(base: str, body: dict, requests: int) -> list[float]:
    with httpx.Client(base_url=base, timeout=120) as client:
        return [timed_post(client, body) for _ in range(requests)]


def busy(base: str, body: dict, clients: int, requests: int) -> tuple[list[float], float]:
    """Each of `clients` clients sends `requests` requests in turn; all clients at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        runs = pool.map(lambda _: requests_in_turn(base, body, requests), range(clients))
        latencies = [t for run in runs for t in run]
    return latencies, clients * requests / (time.perf_counter() - start)


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(values) * 1000:.0f} ms ({p90 * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", default="1,2", help="torch threads, one server each")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--widths", default="32,128")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    servers = {count: start(count) for count in counts}
    results: dict[tuple[int, int], dict[str, list[float]]] = {}
    loads = []
    try:
        for base, _ in servers.values():  # warm-up: imports, the digits, the thread pools
            for width in widths:
                busy(base, {"activation": "sigmoid", "depth": 50, "width": width}, 2, 1)
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for width in widths:
                body = {"activation": "sigmoid", "depth": 50, "width": width}
                for count, (base, _) in servers.items():
                    row = results.setdefault((width, count), {"alone": [], "busy": [], "rate": []})
                    row["alone"] += requests_in_turn(base, body, 3)
                    latencies, rate = busy(base, body, args.clients, 2)
                    row["busy"] += latencies
                    row["rate"].append(rate)
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(timeout=10)
    print(f"{os.cpu_count()} CPUs, load average {min(loads):.1f}–{max(loads):.1f} while "
          f"measuring, {args.rounds} rounds, busy = {args.clients} clients")
    print("| width | torch threads | alone: median (p90) | busy: median (p90) | busy: requests/s |")
    print("|---:|---:|---:|---:|---:|")
    for (width, count), row in sorted(results.items()):
        print(f"| {width} | {count} | {summary(row['alone'])} | {summary(row['busy'])} | "
              f"{statistics.median(row['rate']):.1f} |")


if __name__ == "__main__":
    main()
