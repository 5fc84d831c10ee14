"""The live class quiz under load: one teacher, N students answering on loopback.

Starts uvicorn (one worker, as deployed) on a free loopback port with its own data folder, opens a
class session, connects N students as SSE followers (httpx, one asyncio process), and has the
teacher ask a lesson question (`POST /api/sessions/{code}/quiz`). Each student answers once it
has the question from its stream, after a random "thinking" pause (uniform over --think seconds,
so the answers arrive spread out as in a class), with a number of its own (the spread tells the
teacher's poll which answers it holds). The teacher polls the spread as `quiz_teacher.js` does
(`GET …/quiz`, one request at a time, 250 ms apart).

Measured per student: question latency (the teacher's POST starts → the student has parsed the
event with the question) and answer latency (the student's PUT starts → the first teacher poll
whose answer holds that student's number has arrived: what the projector shows). A baseline with
one student runs first in the same run; the ratio compares the two.

Target (issue 12.7): with 100 students, answers reach the teacher within 1 s median; no answer
lost. Exit status 1 when it is missed.

    .venv/bin/python benchmarks/classroom_quiz.py [--students 100] [--think 3]
        [--database-url postgresql://… --workers 2]

With `--database-url` (PostgreSQL) and `--workers N` it runs `cnnviz serve --workers N` instead:
the session lives in the database and the students' connections land on all the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sse_clients import free_port, start_server, uvicorn

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEDIAN_MS = 1000.0
POLL_S = 0.25  # quiz_teacher.js POLL_MS
QUESTION = {"question": "convolution.output"}  # the MACs of a small convolution


@dataclass
class Result:
    students: int
    question_ms: list[float]
    answer_ms: list[float]
    lost: int

    def summary(self) -> dict:
        def q(values: list[float], p: float) -> float:
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))], 1)

        return {
            "students": self.students,
            "question_median_ms": q(self.question_ms, 0.5),
            "question_p95_ms": q(self.question_ms, 0.95),
            "answer_median_ms": q(self.answer_ms, 0.5),
            "answer_p95_ms": q(self.answer_ms, 0.95),
            "answer_max_ms": q(self.answer_ms, 1.0),
            "lost": self.lost,
        }


async def student(http: httpx.AsyncClient, code: str, index: int, asked: asyncio.Event,
                  connected: asyncio.Event, counter: list[int], think: float,
                  ) -> tuple[float, int, float]:  # fmt: skip
    """Follow the session until the question arrives; answer after thinking. Returns (when the
    question arrived, the number sent, when the PUT started)."""
    async with http.stream("GET", f"/api/sessions/{code}/events") as stream:
        counter[0] += 1
        if counter[0] == counter[1]:
            connected.set()
        async for line in stream.aiter_lines():
            if not line.startswith("data: "):
                continue
            quiz = json.loads(line[6:]).get("quiz")
            if quiz and asked.is_set():
                arrived = time.perf_counter()
                break
    await asyncio.sleep(random.uniform(0, think))
    value = 1000 + index
    started = time.perf_counter()
    response = await http.put(f"/api/sessions/{code}/quiz/{quiz['id']}/answers/student{index:05d}",
                              json={"value": value})  # fmt: skip
    response.raise_for_status()
    return arrived, value, started


async def teacher_polls(http: httpx.AsyncClient, code: str, token: str, seen: dict[float, float],
                        stop: asyncio.Event) -> None:  # fmt: skip
    """Poll the spread 250 ms apart; note when each number was first shown."""
    while not stop.is_set():
        response = await http.get(f"/api/sessions/{code}/quiz", headers={"X-Teacher-Token": token})
        now = time.perf_counter()
        for value, *_ in response.json()["quiz"]["spread"]:
            seen.setdefault(value, now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)


async def measure(base: str, students: int, think: float) -> Result:
    limits = httpx.Limits(max_connections=students + 10, max_keepalive_connections=students + 10)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        created = (await http.post("/api/sessions", json={"page": "/conv", "state": {}})).json()
        code, token = created["code"], created["teacher_token"]
        asked, connected, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        counter = [0, students]
        tasks = [asyncio.create_task(student(http, code, i, asked, connected, counter, think))
                 for i in range(students)]  # fmt: skip
        await asyncio.wait_for(connected.wait(), 60)
        await asyncio.sleep(0.2)
        asked.set()
        t_ask = time.perf_counter()
        response = await http.post(f"/api/sessions/{code}/quiz", json=QUESTION,
                                   headers={"X-Teacher-Token": token})  # fmt: skip
        response.raise_for_status()
        seen: dict[float, float] = {}
        poller = asyncio.create_task(teacher_polls(http, code, token, seen, stop))
        answers = await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 10
        while len(seen) < students and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await poller
        await http.delete(f"/api/sessions/{code}", headers={"X-Teacher-Token": token})
    question_ms = [(arrived - t_ask) * 1000 for arrived, _, _ in answers]
    answer_ms = [(seen[value] - started) * 1000 for _, value, started in answers if value in seen]
    return Result(students, question_ms, answer_ms, lost=students - len(answer_ms))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--think", type=float, default=3.0, help="answers spread over seconds")
    parser.add_argument("--database-url", default="", help="postgresql://… for several workers")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    random.seed(12)
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "CNNVIZ_DATA_DIR": data_dir,
            "PYTHONPATH": str(ROOT),
            "CNNVIZ_CLIENT_FOLLOWS_PER_MINUTE": "100000",  # one address for the class
            "CNNVIZ_CLIENT_FOLLOWER_SLOTS": "100000",
        }
        server = start_server(uvicorn(port), port, cwd=ROOT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            baseline = asyncio.run(measure(base, 1, args.think))
            loaded = asyncio.run(measure(base, args.students, args.think))
        finally:
            server.terminate()
            server.wait(30)
    rows = {"baseline": baseline.summary(), "loaded": loaded.summary()}
    ratio = (statistics.median(loaded.answer_ms) / statistics.median(baseline.answer_ms)
             if baseline.answer_ms and loaded.answer_ms else float("nan"))  # fmt: skip
    print(json.dumps({**rows, "workers": args.workers, "database": "postgresql" if
                      args.database_url else "sqlite (hub in memory)",
                      "answer_median_ratio": round(ratio, 2),
                      "load": os.getloadavg()}, indent=2))  # fmt: skip
    ok = loaded.lost == 0 and rows["loaded"]["answer_median_ms"] < TARGET_MEDIAN_MS
    print("target (median < 1 s, none lost):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
