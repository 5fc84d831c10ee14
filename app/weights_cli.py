"""`cnnviz weights list | get NAME… | --all | add NAME FILE | remove NAME`: the data folder's
ImageNet weights from a terminal (cnncore.pretrained does the work; this shapes the words).

Every failure is one line on stderr starting `cnnviz weights:` and a non-zero exit status; the
data folder is then as it was (cnncore.pretrained_files writes through temporary files)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from app.settings import Settings
from app.weights_choice import runs_by_model
from cnncore.errors import CNNCoreError
from cnncore.models import UnknownModelError, get_model_info
from cnncore.pretrained import PUBLISHED, remove_weights, weights_overview
from cnncore.pretrained_files import download_weights, import_weights

__all__ = ["add_weights_arguments", "weights_command"]


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every zoo model's weights here and what it could get")
    get = actions.add_parser("get", help="download torchvision's published ImageNet weights")
    get.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(PUBLISHED)}")
    get.add_argument("--all", action="store_true", help="every model torchvision publishes")
    get.add_argument("--url", help="the same file from another address (one NAME only)")
    add = actions.add_parser("add", help="install a .pth/.pt/.safetensors downloaded elsewhere")
    add.add_argument("name", metavar="NAME")
    add.add_argument("file", metavar="FILE", type=Path)
    remove = actions.add_parser("remove", help="delete a model's installed weights")
    remove.add_argument("name", metavar="NAME")


def _size(value: int | None) -> str:
    return "" if value is None else f"{value / 1e6:.1f} MB"


def _list(settings: Settings, out: TextIO) -> int:
    runs = runs_by_model(settings)
    rows = [("model", "uses now", "file", "size", "source", "sha256", "top-1/top-5")]
    commands = []
    for row in weights_overview(settings.weights_dir):
        meta = row.installed
        if row.bundled:
            rows.append((row.model, row.chosen, row.bundled, _size(row.bundled_size),
                         "bundled", (row.bundled_sha256 or "")[:16] + "…", ""))  # fmt: skip
        if meta:
            accuracy = f"{meta.top1}/{meta.top5}" if meta.top1 is not None else "unknown"
            rows.append((row.model, "" if row.bundled else row.chosen, meta.file,
                         _size(meta.size), meta.url or f"imported from {meta.original_file}",
                         meta.sha256[:16] + "…", accuracy))  # fmt: skip
        for run, checkpoint in runs.get(row.model, []):
            rows.append((row.model, "", checkpoint, "", f"training run {run}", "", ""))
        if not (row.bundled or meta):
            published = row.published
            accuracy = f"({published.top1}/{published.top5})" if published else ""
            rows.append((row.model, row.chosen, "", "", "seed 0", "", accuracy))
        if row.command:
            commands.append(row.command)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True))
                  .rstrip() + "\n")  # fmt: skip
    out.write(f"\nweights folder: {settings.weights_dir}\n")
    if commands:
        out.write("published ImageNet weights not installed yet (accuracy in brackets):\n")
        out.write("".join(f"  {command}\n" for command in commands))
    return 0


def _get(args: argparse.Namespace, settings: Settings, err: TextIO) -> int:
    names = list(PUBLISHED) if args.all else args.names
    if not names:
        err.write("cnnviz weights get: name a model or give --all\n")
        return 2
    if args.url and len(names) != 1:
        err.write("cnnviz weights get: --url takes exactly one NAME\n")
        return 2
    failed = 0
    for name in names:
        published = PUBLISHED.get(name)
        url = args.url or (
            f"{settings.weights_mirror.rstrip('/')}/{published.file_name}"
            if settings.weights_mirror and published else None
        )  # fmt: skip
        with tqdm(desc=name, unit="B", unit_scale=True, unit_divisor=1024, file=err,
                  leave=True, mininterval=0.2) as bar:  # fmt: skip

            def progress(received: int, total: int | None, bar: tqdm = bar) -> None:
                if total is not None and bar.total != total:
                    bar.reset(total=total)
                bar.update(received - bar.n)

            try:
                path = download_weights(
                    settings.weights_dir, name, url=url,
                    timeout=settings.weights_download_timeout,
                    max_bytes=settings.weights_max_download_bytes, progress=progress,
                )  # fmt: skip
            except CNNCoreError as exc:
                bar.close()
                err.write(f"cnnviz weights: {name}: {exc}\n")
                failed += 1
                continue
        err.write(f"cnnviz weights: {name}: installed {path}\n")
    return 1 if failed else 0


def weights_command(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout,
                    err: TextIO = sys.stderr) -> int:  # fmt: skip
    """Run one `cnnviz weights` action; the exit status."""
    try:
        if args.action == "list":
            return _list(settings, out)
        if args.action == "get":
            return _get(args, settings, err)
        get_model_info(args.name)  # an unknown name is one clear line
        if args.action == "add":
            path = import_weights(settings.weights_dir, args.name, args.file)
            err.write(f"cnnviz weights: {args.name}: installed {path}\n")
            return 0
        if remove_weights(settings.weights_dir, args.name):
            err.write(f"cnnviz weights: {args.name}: removed\n")
            return 0
        err.write(f"cnnviz weights: {args.name} has no installed weights\n")
        return 1
    except (UnknownModelError, CNNCoreError) as exc:
        err.write(f"cnnviz weights: {exc}\n")
        return 1
