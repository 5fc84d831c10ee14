"""`cnnviz serve --host --port --workers`: start uvicorn on the app.
`cnnviz train --model lenet5 --data mnist5k --epochs 3 …`: one headless training run, recorded
where the web UI lists runs (see app.runs.headless)."""

import argparse

import uvicorn

from app.settings import get_settings

SEVERAL_WORKERS = """cnnviz: --workers > 1 refused.
Each worker process keeps its own classroom sessions (followers on another worker never see
the teacher), its own feature-map results (their PNG URLs 404 on another worker), its own
per-client limits, and can pause or stop only the runs it started; only the runs history is
shared (the SQLite file under CNNVIZ_DATA_DIR). Serve one worker, or accept those limits behind
a proxy with sticky sessions: CNNVIZ_ALLOW_SEVERAL_WORKERS=true (README, "Several workers")."""


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="cnnviz", description="cnnviz: see how CNNs work")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    from app.runs.headless import add_train_arguments, train_command

    add_train_arguments(sub.add_parser("train", help="train a model headless (progress on stderr)"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.workers > 1 and not settings.allow_several_workers:
            raise SystemExit(SEVERAL_WORKERS)
        uvicorn.run("app.main:app", host=args.host, port=args.port, workers=args.workers,
                    reload=args.reload)
    elif args.command == "train":
        raise SystemExit(train_command(args, settings))


if __name__ == "__main__":
    main()
