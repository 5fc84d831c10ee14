"""Occlusions in progress: each runs in a thread of its own, polled by the page, stoppable.

An occlusion costs one forward pass per patch position, seconds to minutes: the POST starts it
and answers at once with its id (a random token: whoever has it may read or stop it), the page
polls for `done`/`total`, and a DELETE sets the job's stop flag, seen after the current batch.
At most `occlusion_jobs` run at once (more: 429); finished ones are kept
`occlusion_keep_seconds`, then forgotten.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from app.settings import Settings, get_settings


@dataclass
class OcclusionJob:
    id: str
    total: int
    patch: int
    stride: int
    target: int
    done: int = 0
    state: str = "running"  # running, done, stopped, failed
    values: np.ndarray | None = None  # mean drop of the logit per pixel
    finished: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class OcclusionJobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jobs: dict[str, OcclusionJob] = {}
        self._lock = threading.Lock()

    def _forget_old(self) -> None:
        oldest = time.monotonic() - self.settings.occlusion_keep_seconds
        for key, job in list(self._jobs.items()):
            if job.finished is not None and job.finished < oldest:
                del self._jobs[key]

    def start(
        self,
        job: OcclusionJob,
        work: Callable[[Callable[[int, int], bool]], np.ndarray | None],
    ) -> OcclusionJob | None:
        """Run `work(progress)` in a thread for `job`; None when too many already run."""
        with self._lock:
            self._forget_old()
            running = sum(j.state == "running" for j in self._jobs.values())
            if running >= self.settings.occlusion_jobs:
                return None
            self._jobs[job.id] = job

        def progress(done: int, total: int) -> bool:
            job.done, job.total = done, total
            return not job.stop.is_set()

        def run() -> None:
            try:
                values = work(progress)
                job.values = values
                job.state = "done" if values is not None else "stopped"
            except Exception:  # noqa: BLE001 - the page is told; the server goes on
                job.state = "failed"
            job.finished = time.monotonic()

        threading.Thread(target=run, name=f"occlusion-{job.id[:6]}", daemon=True).start()
        return job

    def get(self, job_id: str) -> OcclusionJob | None:
        with self._lock:
            self._forget_old()
            return self._jobs.get(job_id)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(16)


@lru_cache
def get_occlusion_jobs() -> OcclusionJobs:
    return OcclusionJobs(get_settings())
