"""`cnnviz serve --host --port --workers [--fd N]`: start uvicorn on the app.
`cnnviz train --model lenet5 --data mnist5k --epochs 3 …`: one headless training run, recorded
where the web UI lists runs (see app.runs.headless).
`cnnviz weights list | get NAME… | --all | add NAME FILE | remove NAME`: published ImageNet
weights in the data folder (see app.weights_cli)."""

import argparse
import os
import socket
import sys

import uvicorn

from app.http_server import uvicorn_options
from app.memory import limit_arenas
from app.runs.store import open_run_store, shared_database
from app.settings import Settings, get_settings

SEVERAL_WORKERS = """cnnviz: --workers > 1 refused: the runs database is SQLite, one host's file.
Several workers share their runs (history, live events, pause/resume/stop from any worker)
through PostgreSQL: CNNVIZ_DATABASE_URL=postgresql://user:password@host/database
(pip install 'cnnviz[postgres]'), and their classroom sessions too; each worker keeps its own
feature-map results (their PNG URLs 404 on another worker) and per-client limits. Several
workers on the SQLite file anyway (a run is then paused or stopped only through the worker that
started it, and classroom sessions stay in one worker's memory):
CNNVIZ_ALLOW_SEVERAL_WORKERS=true."""
PER_PROCESS = """cnnviz: {workers} workers share runs through PostgreSQL, and classroom sessions
(their quiz and the pictures a class sends included); feature-map results and per-client limits
stay per worker (README, "Several workers")."""


def _check_database(settings: Settings) -> None:
    """Open the runs database once before the workers start (its tables are made here): a
    wrong URL or a server that is down is one clear message, not N workers failing."""
    try:
        open_run_store(settings.database_url, settings.sqlite_path).close()
    except Exception as exc:  # psycopg's errors and ours: all end the command the same way
        raise SystemExit(f"cnnviz: the runs database cannot be opened: {exc}") from exc


def _serve_on(args: argparse.Namespace) -> None:
    """One worker on the socket the parent bound and passed on (`--fd`): a test or a service
    manager binds port 0 itself, so no other process can take the port before the server
    listens. `socket(fileno=)` reads the socket's family, so TCP options apply as usual
    (uvicorn's own `fd` would take it for a Unix socket)."""
    if args.workers != 1 or args.reload:
        raise SystemExit("cnnviz: --fd serves one worker, without --reload")
    config = uvicorn.Config("app.main:app", host=args.host, port=args.port, **uvicorn_options())
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])


def spin_briefly(count: int) -> bool:
    """Idle OpenMP threads of this process (and of the processes it starts) spin `count` rounds
    before they sleep: GOMP_SPINCOUNT, read by libgomp once, when torch loads it, so only
    before torch is imported (a value the environment already has is kept). True when set.

    libgomp spins 300 000 rounds, but 1 000 once a process runs more OpenMP threads than it has
    cores. A server runs its forward passes in one team (a request thread and its helpers), so it
    spins long: under load a spinning thread takes the core its team mate waits for, and a VGG-16
    forward pass costs twice its CPU (766-869 ms against 396-413 ms with two teams, load 7-9;
    docs/PERFORMANCE.md). 1 000 is what the same pass gets in a process with two teams."""
    if count <= 0 or "torch" in sys.modules:
        return False
    os.environ.setdefault("GOMP_SPINCOUNT", str(count))
    return True


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    spin_briefly(settings.omp_spin_count)  # before the commands below import torch
    parser = argparse.ArgumentParser(prog="cnnviz", description="cnnviz: see how CNNs work")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    serve.add_argument("--fd", type=int, default=None,
                       help="serve on this listening socket, already bound (a descriptor the "
                       "parent passed on; --host/--port then only name the address)")  # fmt: skip
    from app.runs.headless import add_train_arguments, train_command

    add_train_arguments(sub.add_parser("train", help="train a model headless (progress on stderr)"))
    from app.weights_cli import add_weights_arguments, weights_command

    add_weights_arguments(sub.add_parser("weights", help="list, get, add or remove weights"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        shared = shared_database(settings.database_url)
        if args.workers > 1 and not (shared or settings.allow_several_workers):
            raise SystemExit(SEVERAL_WORKERS)
        if shared:
            _check_database(settings)
            if args.workers > 1:
                print(PER_PROCESS.format(workers=args.workers), file=sys.stderr)
        # The address the app listens on, for the class join links (app/join_address.py): in
        # this process's settings and in the workers' environment.
        os.environ["CNNVIZ_HOST"] = args.host
        if hasattr(get_settings, "cache_clear"):  # (tests may stand in a plain function)
            get_settings.cache_clear()
        # Before any thread starts; the workers inherit it as MALLOC_ARENA_MAX (app/memory.py).
        limit_arenas(settings.malloc_arena_max)
        if args.host != settings.host:
            # The app answers to the name it is served on (app/http_guards.py, allowed hosts);
            # it is imported after this, in this process or in each worker.
            os.environ["CNNVIZ_HOST"] = args.host
            get_settings.cache_clear()
        if args.fd is not None:
            _serve_on(args)
            return
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            reload=args.reload,
            **uvicorn_options(),
        )
    elif args.command == "train":
        raise SystemExit(train_command(args, settings))
    elif args.command == "weights":
        raise SystemExit(weights_command(args, settings))


if __name__ == "__main__":
    main()
