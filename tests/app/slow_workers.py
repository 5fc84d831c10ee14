"""Worker processes that misbehave, for the run manager's tests (importable by the forkserver:
a worker's target travels by name)."""

import os
import time

from app.runs.worker import worker_main

START_DELAY = 4.0  # seconds a slow starter stays silent: well past the tests' dead_after


def frozen_worker(spec, conn, threads) -> None:
    """A worker that started (one heartbeat) and then froze: it never reads the server's words
    nor sends anything more, as a process stopped (SIGSTOP) or hung in native code does."""
    del spec, threads
    conn.send({"kind": "beat"})
    while True:
        time.sleep(60)


def silent_worker(spec, conn, threads) -> None:
    """A process that never gets as far as its first beat (hung while starting)."""
    del spec, conn, threads
    while True:
        time.sleep(60)


def slow_start_worker(spec, conn, threads) -> None:
    """A real worker whose process takes START_DELAY seconds before the worker code runs
    (a loaded machine importing torch, a spawned interpreter): silent all that time."""
    time.sleep(START_DELAY)
    worker_main(spec, conn, threads)


def exiting_worker(spec, conn, threads) -> None:
    """A process that dies while starting, before its first beat."""
    del spec, conn, threads
    os._exit(3)


def chatty_worker(spec, conn, threads) -> None:
    """A worker that sends a small event every 20 ms forever (a run that trains on and on)."""
    del spec, threads
    step = 0
    while True:
        step += 1
        conn.send({"kind": "note", "step": step, "time": time.time()})
        time.sleep(0.02)
