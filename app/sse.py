"""What every Server-Sent Events route of cnnviz shares (WHATWG HTML Living Standard, §9.2
"Server-sent events"): how long a dropped client waits before reconnecting, and how the
`Last-Event-ID` header it sends back is read."""

RECONNECT_MS = 2000  # the `retry:` field: how soon a dropped EventSource tries again


def parse_last_event_id(header: str | None) -> int | None:
    """Last-Event-ID as a browser sends it back; anything else (absent, not a small whole
    number) means the client has seen nothing."""
    return int(header) if header and header.isdigit() and len(header) < 19 else None
