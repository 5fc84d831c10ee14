"""Worker processes that misbehave, for the run manager's tests (importable by the forkserver:
a worker's target travels by name)."""

import time


def frozen_worker(spec, conn, threads) -> None:
    """A worker stuck in one endless step: it never reads the server's words nor sends an
    event, as a step of minutes (or a process stopped in native code) does."""
    del spec, conn, threads
    while True:
        time.sleep(60)
