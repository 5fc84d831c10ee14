"""The address students open to join a class: one their phones can reach.

A teacher often opens the app on the machine that serves it, as http://127.0.0.1:8000: a join link
built from that request would send every phone to its own loopback. So:
- the teacher reached the server by another name (a LAN address, a host name): that name, as is;
- the teacher is on loopback and the server listens on every interface (`--host 0.0.0.0` or
  `::`): this machine's LAN address (the one its default route leaves by; found by connecting a
  UDP socket, which sends nothing);
- the server listens on one specific non-loopback address: that address;
- the server listens on loopback only: the loopback link, with a warning that students cannot
  reach it and the command that serves the LAN.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

__all__ = ["LAN_COMMANDS", "JoinBase", "join_base", "lan_address"]

ALL_INTERFACES = {"0.0.0.0", "::", ""}
LAN_COMMANDS = ("make run HOST=0.0.0.0", "cnnviz serve --host 0.0.0.0")


@dataclass(frozen=True)
class JoinBase:
    base: str  # scheme://host:port, without a trailing slash
    reachable: bool  # False: only this machine can open it


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def lan_address() -> str | None:
    """This machine's address on its default route, or None without a network. A UDP socket's
    connect() only picks the route and the local address: no packet is sent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if is_loopback(address) or address == "0.0.0.0" else address


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def join_base(scheme: str, request_host: str, port: int | None, bind_host: str) -> JoinBase:
    """Where students should join, given how the teacher reached the server (`request_host`,
    `port`) and the address the server listens on (`bind_host`)."""
    suffix = f":{port}" if port else ""
    if not is_loopback(request_host):
        return JoinBase(f"{scheme}://{_host_text(request_host)}{suffix}", True)
    if bind_host in ALL_INTERFACES:
        lan = lan_address()
        if lan:
            return JoinBase(f"{scheme}://{lan}{suffix}", True)
    elif not is_loopback(bind_host):
        return JoinBase(f"{scheme}://{_host_text(bind_host)}{suffix}", True)
    return JoinBase(f"{scheme}://{_host_text(request_host)}{suffix}", False)
