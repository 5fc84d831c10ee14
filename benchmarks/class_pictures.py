"""A class sending pictures into the teacher's dataset, on one worker and across two.

Runs the same class twice in one run: first the baseline, one uvicorn worker on SQLite (the
queue in its memory), then `cnnviz serve --workers 2` on PostgreSQL (`--database-url`; the
queue in the database). Each time the teacher opens a session and links a dataset; N students,
each on a connection of their own (kept alive: it stays with the worker that accepted it), send
P pictures each (random 160×120 JPEGs) spread over --spread seconds; the teacher polls the
waiting list back to back, 100 ms apart (the page polls every 2 s: what is measured here is
the way a picture takes, not the page's poll), then accepts every picture.

Measured per picture: the student's POST (checked, shrunk, queued: the student's interaction),
the time from that POST's start to the first teacher poll that lists it (split by whether the
student's connection reached the teacher's worker or the other one), and the teacher's accept.
Ratios: two workers on PostgreSQL ÷ one worker in memory, medians.

Then the queue alone (`submit` in this process, no HTTP, no picture decoding), one at a time
and 8 threads at once, in memory and on PostgreSQL: every submit on PostgreSQL takes one
advisory lock until its commit (the limits are checked by one submit at a time), so this is
what a burst of pictures waits for.

    .venv/bin/python benchmarks/class_pictures.py --database-url postgresql://… \
        [--students 30] [--pictures 2] [--spread 3]

The PostgreSQL database must exist (the tables are created). Exit status 1 when a picture is
lost or a student's POST takes over 1 s median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
from PIL import Image
from sse_clients import free_port, start_server, uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.class_pictures import ClassPictureLimits, InMemoryClassPictures  # noqa: E402
from app.class_pictures_postgres import PostgresClassPictures  # noqa: E402
from app.session_limits import HubLimits  # noqa: E402
from app.sessions_postgres import PostgresHub  # noqa: E402
from app.settings import Settings  # noqa: E402
from cnncore.datasets.user_images import PreparedPicture  # noqa: E402

POLL_S = 0.1
SLOW_POST_MS = 1000.0


@dataclass
class Result:
    post_ms: list[float] = field(default_factory=list)
    visible_ms: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "other": []})
    accept_ms: list[float] = field(default_factory=list)
    lost: int = 0

    def summary(self) -> dict:
        def q(values: list[float], p: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))], 1)

        rows = {"post_median_ms": q(self.post_ms, 0.5), "post_p95_ms": q(self.post_ms, 0.95)}
        for where, values in self.visible_ms.items():
            rows[f"visible_{where}_worker_n"] = len(values)
            rows[f"visible_{where}_worker_median_ms"] = q(values, 0.5)
            rows[f"visible_{where}_worker_p95_ms"] = q(values, 0.95)
        rows |= {"accept_median_ms": q(self.accept_ms, 0.5), "lost": self.lost}
        return rows


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


async def process(client: httpx.AsyncClient) -> str:
    return (await client.get("/api/health")).json()["process"]


async def student(client: httpx.AsyncClient, code: str, index: int, pictures: int,
                  spread: float, place: str, sent: dict[str, tuple[float, str]],
                  result: Result) -> None:  # fmt: skip
    for n in range(pictures):
        await asyncio.sleep(random.uniform(0, spread / pictures))
        data = {"class_id": "0", "student": f"student-{index:04d}aaaa", "name": f"s{index}"}
        started = time.perf_counter()
        answer = await client.post(f"/api/sessions/{code}/pictures", data=data,
                                   files={"image": ("p.jpg", jpeg(index * 100 + n))})  # fmt: skip
        result.post_ms.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        sent[answer.json()["id"]] = started, place


async def teacher_polls(client: httpx.AsyncClient, code: str, headers: dict, seen: dict,
                        stop: asyncio.Event) -> None:  # fmt: skip
    while not stop.is_set():
        answer = await client.get(f"/api/sessions/{code}/pictures/pending", headers=headers)
        now = time.perf_counter()
        for picture in answer.json():
            seen.setdefault(picture["id"], now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)


async def spread(connection, mine: str, students: int,
                 workers: int) -> tuple[list[httpx.AsyncClient], list[str]]:  # fmt: skip
    """`students` connections, half of them on the teacher's worker (`mine`) and half on
    another when there are two: connections opened at once land on either, those not needed
    are closed."""
    wanted = {"same": students // workers, "other": students - students // workers}
    found: dict[str, list] = {"same": [], "other": []}
    for _ in range(40):
        batch = [connection() for _ in range(students)]
        for client, worker in zip(batch, await asyncio.gather(*(process(c) for c in batch)),
                                  strict=True):  # fmt: skip
            side = "same" if worker == mine else "other"
            if len(found[side]) < wanted[side]:
                found[side].append(client)
            else:
                await client.aclose()
        if all(len(found[side]) == wanted[side] for side in found):
            break
    else:
        raise RuntimeError(f"the connections did not reach both workers: {found}")
    return found["same"] + found["other"], ["same"] * wanted["same"] + ["other"] * wanted["other"]


async def measure(base: str, students: int, pictures: int, spread_s: float,
                  workers: int) -> Result:  # fmt: skip
    result = Result()
    async with contextlib.AsyncExitStack() as stack:

        def connection() -> httpx.AsyncClient:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            return httpx.AsyncClient(base_url=base, timeout=60, limits=limits)

        teacher = await stack.enter_async_context(connection())
        session = (await teacher.post("/api/sessions", json={"page": "/teach", "state": {}})).json()
        code, headers = session["code"], {"X-Teacher-Token": session["teacher_token"]}
        made = (
            await teacher.post("/api/datasets", json={"name": "class", "classes": ["a", "b"]})
        ).json()
        owner = headers | {"X-Dataset-Token": made["owner_token"]}
        linked = await teacher.put(f"/api/sessions/{code}/dataset", json={"dataset": made["id"]},
                                   headers=owner)  # fmt: skip
        linked.raise_for_status()
        mine = await process(teacher)
        clients, places = await spread(connection, mine, students, workers)
        for client in clients:
            stack.push_async_callback(client.aclose)
        sent: dict[str, tuple[float, str]] = {}  # picture → its POST's start, the worker
        seen: dict[str, float] = {}
        stop = asyncio.Event()
        poller = asyncio.create_task(teacher_polls(teacher, code, headers, seen, stop))

        await asyncio.gather(*(student(clients[i], code, i, pictures, spread_s,
                                       places[i], sent, result)
                               for i in range(students)))  # fmt: skip
        deadline = time.perf_counter() + 10
        while not set(sent) <= set(seen) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await poller
        for picture, (started, place) in sent.items():
            if picture in seen:
                result.visible_ms[place].append((seen[picture] - started) * 1000)
        result.lost = len(set(sent) - set(seen))
        for picture in sent:
            started = time.perf_counter()
            answer = await teacher.post(f"/api/sessions/{code}/pictures/{picture}/accept",
                                        headers=owner)  # fmt: skip
            answer.raise_for_status()
            result.accept_ms.append((time.perf_counter() - started) * 1000)
        await teacher.delete(f"/api/sessions/{code}", headers=headers)
    return result


def run(env: dict[str, str], command: list[str], port: int, args, workers: int) -> Result:
    log = Path(env["CNNVIZ_DATA_DIR"]) / "server.log"
    with log.open("wb") as sink:
        try:
            server = start_server(command, port, cwd=ROOT, env=env, log=sink)
        except RuntimeError:
            sys.stderr.write(log.read_text(errors="replace")[-3000:])
            raise
    try:
        random.seed(15)
        return asyncio.run(measure(f"http://127.0.0.1:{port}", args.students, args.pictures,
                                   args.spread, workers))  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)


def queue_submits(queues, codes: list[str], threads: int, count: int) -> tuple[list[float], float]:
    """Milliseconds of each of `count` submits (20 kB each), `threads` at a time; submits a
    second over the whole batch."""
    picture = PreparedPicture("p", b"x" * 20_000, "0" * 16, 160, 120)

    def one(i: int) -> float:
        started = time.perf_counter()
        queues.submit(codes[i % len(codes)], f"student-{i:06d}", "s", 0, picture)
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        taken = list(pool.map(one, range(count)))
    return taken, count / (time.perf_counter() - started)


def queue_only(url: str) -> dict:
    """The queue alone, in memory and on PostgreSQL (a schema of its own, dropped after)."""
    schema = f"bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    in_schema = f"{url}{separator}options=-csearch_path%3D{schema}"
    limits = ClassPictureLimits(per_student=1000, per_session=10_000, total_bytes=10**10)
    loop = asyncio.new_event_loop()
    hub = PostgresHub(in_schema, HubLimits.from_settings(Settings()), loop, 1.0)
    shared = PostgresClassPictures(in_schema, limits, pool_size=8)
    rows = {}
    try:
        codes = [hub.create("/teach", {})[0].code for _ in range(4)]
        memory = InMemoryClassPictures(limits)
        for queues in (memory, shared):
            for code in codes:
                queues.link(code, "dataset")
        for name, queues in (("memory", memory), ("postgres", shared)):
            for threads in (1, 8):
                taken, rate = queue_submits(queues, codes, threads, 200)
                rows[f"{name}_{threads}_at_once_median_ms"] = round(statistics.median(taken), 2)
                rows[f"{name}_{threads}_at_once_per_second"] = round(rate)
    finally:
        shared.close()
        hub.close()
        loop.close()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="postgresql://… (it must exist)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--pictures", type=int, default=2, help="each student sends")
    parser.add_argument("--spread", type=float, default=3.0, help="seconds the sending spans")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CNNVIZ_CLIENT_HEAVY_REQUESTS": "10000",
            "CNNVIZ_CLIENT_HEAVY_PER_MINUTE": "100000",
        }  # one address for the whole class
        env.pop("CNNVIZ_DATABASE_URL", None)
        port = free_port()
        rows["one_worker_memory"] = run(
            env | {"CNNVIZ_DATA_DIR": one}, uvicorn(port), port, args, 1
        )
        port = free_port()
        serve = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--host",
                 "127.0.0.1", "--port", str(port), "--workers", "2"]  # fmt: skip
        shared = env | {"CNNVIZ_DATA_DIR": two, "CNNVIZ_DATABASE_URL": args.database_url}
        rows["two_workers_postgres"] = run(shared, serve, port, args, 2)
    base, pg = rows["one_worker_memory"], rows["two_workers_postgres"]
    visible = base.visible_ms["same"] + base.visible_ms["other"]
    ratios = {
        "post_median_ratio": statistics.median(pg.post_ms) / statistics.median(base.post_ms),
        "visible_other_worker_ratio": (statistics.median(pg.visible_ms["other"])
                                       / statistics.median(visible)),
        "accept_median_ratio": statistics.median(pg.accept_ms) / statistics.median(base.accept_ms),
    }  # fmt: skip
    print(json.dumps({**{k: v.summary() for k, v in rows.items()},
                      "queue_only": queue_only(args.database_url),
                      **{k: round(v, 2) for k, v in ratios.items()},
                      "students": args.students, "pictures_each": args.pictures,
                      "load": os.getloadavg(), "git": subprocess.run(
                          ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()}, indent=2))  # fmt: skip
    ok = all(r.lost == 0 and statistics.median(r.post_ms) < SLOW_POST_MS for r in rows.values())
    print("no picture lost, POST median < 1 s:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
