"""The join link carries an address students can reach: the LAN address when the server listens
on every interface, the teacher's own address when it is not loopback, and a warning with the
command to serve the LAN when the server listens on loopback only. Loopback only: the bound
address and this machine's LAN address are monkeypatched."""

# ruff: noqa: F811  (pytest fixtures imported from test_sessions_routes, used as arguments)
import pytest
from test_sessions_routes import base_url, client, server  # noqa: F401

from app import join_address
from app.deps import settings_dep
from app.join_address import LAN_COMMANDS, join_base
from app.main import app
from app.settings import Settings

LAN = "192.0.2.17"  # TEST-NET-1 (RFC 5737): documentation only, never routed


@pytest.fixture
def on_lan(monkeypatch):
    monkeypatch.setattr(join_address, "lan_address", lambda: LAN)


@pytest.mark.parametrize(
    "request_host,bind,expected,reachable",
    [
        ("127.0.0.1", "0.0.0.0", f"http://{LAN}:8000", True),
        ("localhost", "::", f"http://{LAN}:8000", True),
        ("::1", "0.0.0.0", f"http://{LAN}:8000", True),
        ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:8000", False),
        ("localhost", "localhost", "http://localhost:8000", False),
        ("127.0.0.1", "198.51.100.4", "http://198.51.100.4:8000", True),  # one interface
        ("198.51.100.4", "0.0.0.0", "http://198.51.100.4:8000", True),  # the teacher's own way in
        ("cnnviz.school.example", "127.0.0.1", "http://cnnviz.school.example:8000", True),
        ("127.0.0.1", "fd00::5", "http://[fd00::5]:8000", True),
    ],
)
def test_join_base(on_lan, request_host, bind, expected, reachable):
    assert join_base("http", request_host, 8000, bind) == join_address.JoinBase(expected, reachable)


def test_no_network_at_all_leaves_the_loopback_link_with_a_warning(monkeypatch):
    monkeypatch.setattr(join_address, "lan_address", lambda: None)
    assert join_base("http", "127.0.0.1", 8000, "0.0.0.0").reachable is False


def test_lan_address_is_an_address_or_none():
    found = join_address.lan_address()
    assert found is None or (found.count(".") == 3 and not found.startswith("127."))


def serving_on(host: str):
    app.dependency_overrides[settings_dep] = lambda: Settings(_env_file=None, host=host)


def test_session_on_a_server_listening_on_every_interface_links_the_lan(client, on_lan):
    serving_on("0.0.0.0")
    try:
        body = client.post("/api/sessions", json={"page": "/conv", "state": {}}).json()
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    port = client.base_url.port
    assert body["join_url"] == f"http://{LAN}:{port}/join/{body['code']}"
    assert body["reachable"] is True and body["lan_commands"] == []


def test_session_on_a_loopback_server_warns_with_the_command(client, on_lan):
    serving_on("127.0.0.1")
    try:
        body = client.post("/api/sessions", json={"page": "/conv", "state": {}}).json()
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    assert body["join_url"] == f"{client.base_url}/join/{body['code']}"
    assert body["reachable"] is False
    assert body["lan_commands"] == list(LAN_COMMANDS)
    assert "make run HOST=0.0.0.0" in LAN_COMMANDS and "cnnviz serve --host 0.0.0.0" in LAN_COMMANDS
