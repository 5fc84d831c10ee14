"""Worker processes that misbehave, for the run manager's tests (importable by the forkserver:
a worker's target travels by name)."""

import time


def frozen_worker(spec, conn, threads) -> None:
    """A worker that started (one heartbeat) and then froze: it never reads the server's words
    nor sends anything more, as a process stopped (SIGSTOP) or hung in native code does."""
    del spec, threads
    conn.send({"kind": "beat"})
    while True:
        time.sleep(60)
