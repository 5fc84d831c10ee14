"""Which process drives a run, whether it still exists, and who may control it.

Every run record names its owner as `host|pid|token`: the server's run manager or a
`cnnviz train` process. A run whose owner is gone while the record still says queued, running
or paused was abandoned (the server was killed, the machine restarted) and is marked
interrupted. Owners on another host cannot be checked from here: their runs' heartbeats
are (`app.runs.liveness`).

A run also belongs to whoever started it: its control token is an owner token
(`app.owner_tokens`, as a dataset's); pause, resume and stop need it.
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = [
    "HOST",
    "claim_owner",
    "owner_alive",
    "owner_pid",
    "release_owner",
]

HOST = socket.gethostname().replace("|", "_")
_LIVE_TOKENS: set[str] = set()  # owners alive in this very process


def claim_owner() -> str:
    """A new owner id for this process (one per manager or CLI run)."""
    token = secrets.token_hex(4)
    _LIVE_TOKENS.add(token)
    return f"{HOST}|{os.getpid()}|{token}"


def release_owner(owner: str) -> None:
    _LIVE_TOKENS.discard(owner.rsplit("|", 1)[-1])


def owner_pid(owner: str) -> int | None:
    parts = owner.split("|")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def owner_alive(owner: str) -> bool:
    parts = owner.split("|")
    if len(parts) != 3 or parts[0] != HOST:
        return True
    pid = owner_pid(owner)
    if pid is None:
        return False
    if pid == os.getpid():
        return parts[2] in _LIVE_TOKENS
    return _pid_alive(pid)
