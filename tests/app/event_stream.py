"""Reading the runs' text/event-stream in API tests (app/routes/runs.py writes it)."""

from __future__ import annotations

import json


def run_events(text: str | bytes) -> list[tuple[int, dict]]:
    """(id, event) of each run event in a text/event-stream (a whole answer or a chunk of one):
    messages with an id and data, in order (comments and the id-less `done` message skipped)."""
    if isinstance(text, bytes):
        text = text.decode()
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "id" in fields and "data" in fields:
            found.append((int(fields["id"]), json.loads(fields["data"])))
    return found
