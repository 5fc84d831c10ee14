"""Seeded draws from torch's global random generator, safe across request threads.

Layer constructors (`nn.Linear`, `nn.Conv2d` ...) draw their initial weights from torch's one
process-wide generator. `torch.random.fork_rng` + `torch.manual_seed` restores that generator
afterwards, but does not stop another thread drawing from it in between: two requests seeding it
at once (the vanishing-gradient experiment for sigmoid and ReLU, asked for together by one page)
each got some of the other's numbers. Every draw from the global generator in a server process
goes through the one lock here: seeded sections through `seeded`, unseeded model building
(`cnncore.models.get_model`) through `global_rng`. Training workers are processes of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["global_rng", "seeded"]

# Re-entrant: a seeded section builds zoo models, which take the lock again.
_GLOBAL_RNG = threading.RLock()


@contextmanager
def global_rng() -> Iterator[None]:
    """Hold torch's global generator: no seeded section of another thread runs meanwhile."""
    with _GLOBAL_RNG:
        yield


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global generator at `seed` for this block, and as it was afterwards; the draws
    inside are the same whatever other threads do."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
