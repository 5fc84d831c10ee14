"""A throwaway PostgreSQL server for the tests that run against it (the run store, several
server workers): started once per test session with initdb + pg_ctl in a temporary folder,
listening on a free loopback port, stopped and deleted at the end. Each test gets a schema of
its own (`postgres_url`), so tests never see each other's runs.

`CNNVIZ_TEST_POSTGRES_URL` names an existing server instead (a CI service). Without one and
without the server binaries the PostgreSQL tests skip, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest


def _server_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: p.split("/")[4])
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this test session."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[dev]')")
    given = os.environ.get("CNNVIZ_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    binaries = _server_binaries()
    if binaries is None or not (binaries / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql "
                    "or set CNNVIZ_TEST_POSTGRES_URL")  # fmt: skip
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    folder = Path(tempfile.mkdtemp(prefix="cnnviz-pg-"))
    if os.geteuid() == 0:
        os.chown(folder, server_user.pw_uid, server_user.pw_gid)
    data = folder / "data"
    subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                                    "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]),
                   check=True, capture_output=True)  # fmt: skip
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log")]
    # The port is chosen before PostgreSQL binds it: another process may take it meanwhile, so
    # a start that fails is tried again on another free port.
    for _attempt in range(3):
        port = _free_port()
        # fsync off and no full-page writes: a test database need not survive a power cut.
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        )
        started = subprocess.run(
            _as_server_user([*pg_ctl, "-w", "-t", "60", "-o", options, "start"]),
            capture_output=True, text=True,
        )  # fmt: skip
        if started.returncode == 0:
            break
    if started.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL server did not start: {started.stderr}\n{log}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections work in a new, empty schema of their own (search_path)."""
    import psycopg

    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def open_database(request, tmp_path) -> Iterator[Callable]:
    """`open_database(opener)`: a store opened by `opener(url, sqlite_path)` on the test's one
    database (as another server process would open it), SQLite then PostgreSQL (a schema of
    its own): a test using it runs against both. Every store opened is closed at the end."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    opened = []

    def open_(opener: Callable):
        opened.append(opener(url, tmp_path / "runs.sqlite3"))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(autouse=True)
def fresh_quotas():
    """Every test starts with unspent per-client quotas (app/quotas.py): the test client is one
    address for the whole session, and its counts would otherwise carry over."""
    from app.quotas import reset_quotas

    reset_quotas()
    yield
    reset_quotas()
