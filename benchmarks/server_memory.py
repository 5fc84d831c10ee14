"""The server under a memory probe: uvicorn in this process, its memory sampled from inside.

How `benchmarks/classroom.py` starts its server: uvicorn on the app, one process, the malloc
arenas limited as `cnnviz serve` limits them (app/memory.py). Every `--every`
seconds one JSON line goes to DIR/samples.jsonl: RSS, glibc's heap figures (mallinfo2: bytes in
use vs free inside the arenas, mmapped blocks), the arenas themselves, the bytes Python allocated
(tracemalloc, when on), live threads, and counts of the objects a leak would pile up (SQLite
connections, asyncio tasks, SSE subscriptions). With `--trace-from S` tracemalloc records 8
frames per allocation from then on; at each `--snapshot-at` second the object counts by type
and a tracemalloc snapshot are written (DIR/types-<s>.json, DIR/snapshot-<s>.pickle); `compare`
prints what grew between two of them, grouped by where it was allocated
(https://docs.python.org/3/library/tracemalloc.html#compute-differences). `--trim-every` calls
glibc's malloc_trim(0) that often, to see how much of RSS is free heap rather than live data.

    python benchmarks/server_memory.py serve --out DIR [--trace-from 60] --port 8000
    python benchmarks/server_memory.py compare DIR/snapshot-60.pickle DIR/snapshot-600.pickle
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc ≥ 2.33): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def heap() -> dict[str, float]:
    """glibc heap figures in MB: `in_use` (uordblks, malloc'd and not freed), `free` (fordblks:
    freed but still held by the arenas), `mmapped` (hblkhd: big blocks, returned on free)."""
    if not hasattr(LIBC, "mallinfo2"):
        return {}
    LIBC.mallinfo2.restype = MallInfo2
    info = LIBC.mallinfo2()
    fields = {"arena_mb": info.arena, "in_use_mb": info.uordblks, "free_mb": info.fordblks,
              "mmapped_mb": info.hblkhd}  # fmt: skip
    return {name: round(value / 2**20, 1) for name, value in fields.items()}


def arenas() -> int:
    """Heaps of secondary malloc arenas: anonymous 64 MB-aligned mappings (one or more each)."""
    count = 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts) == 5 and parts[4] == "0":  # anonymous, no name
            start, end = (int(x, 16) for x in parts[0].split("-"))
            count += start % (64 << 20) == 0 and end - start <= 64 << 20
    return count


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


WATCHED = ("sqlite3.Connection", "_asyncio.Task", "app.runs.stream.RunSubscription",
           "app.feature_cache.StoredResult", "app.feature_cache.FeatureModel",
           "torch.fx.graph_module.GraphModule", "threading.Thread")  # fmt: skip


def type_counts() -> dict[str, int]:
    """Live objects the collector tracks, by qualified type name."""
    found: dict[str, int] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        found[name] = found.get(name, 0) + 1
    return found


def sampler(out: Path, every: float, snapshot_at: list[float], trim_every: float,
            trace_from: float | None) -> None:  # fmt: skip
    start, pending, last_trim = time.monotonic(), sorted(snapshot_at), time.monotonic()
    with (out / "samples.jsonl").open("a") as log:
        while True:
            time.sleep(every)
            now = time.monotonic() - start
            if trace_from is not None and now >= trace_from and not tracemalloc.is_tracing():
                tracemalloc.start(8)
            if trim_every and time.monotonic() - last_trim >= trim_every:
                LIBC.malloc_trim(0)
                last_trim = time.monotonic()
            kinds = type_counts()
            sample = {"t_s": round(now), "rss_mb": rss_mb(), **heap(), "arenas": arenas(),
                      "threads": threading.active_count(),
                      **{name: kinds.get(name, 0) for name in WATCHED}}  # fmt: skip
            if tracemalloc.is_tracing():
                sample["python_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            while pending and now >= pending[0]:
                moment = round(pending.pop(0))
                (out / f"types-{moment}.json").write_text(json.dumps(kinds))
                if tracemalloc.is_tracing():
                    tracemalloc.take_snapshot().dump(str(out / f"snapshot-{moment}.pickle"))
            log.write(json.dumps(sample) + "\n")
            log.flush()


def compare(first: Path, second: Path, top: int) -> None:
    """What grew between two moments: object counts by type, then Python allocations by
    where they were made (when traced)."""
    before, after = (json.loads(p.with_name(p.stem.replace("snapshot", "types") + ".json")
                                .read_text()) for p in (first, second))  # fmt: skip
    grown = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)
    print("objects grown:", ", ".join(f"{name} {n:+d}" for n, name in grown[:top] if n > 0))
    if not first.exists():
        return
    old, new = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(second))
    noise = [tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]  # fmt: skip
    old, new = old.filter_traces(noise), new.filter_traces(noise)
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename"))
    print(f"Python-allocated growth {total / 2**20:+.1f} MB")
    for stat in new.compare_to(old, "traceback")[:top]:
        print(f"{stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format()[-8:]:
            print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--out", type=Path, help="where samples go (none: no sampling)")
    serve.add_argument("--every", type=float, default=10.0)
    serve.add_argument("--trace-from", type=float, metavar="S",
                       help="start tracemalloc (8 frames) this many seconds in: traced from the "
                       "start, a first run takes minutes to start")  # fmt: skip
    serve.add_argument("--snapshot-at", type=float, action="append", default=[])
    serve.add_argument("--trim-every", type=float, default=0.0)
    serve.add_argument("--port", type=int, required=True)
    show = sub.add_parser("compare")
    show.add_argument("first", type=Path)
    show.add_argument("second", type=Path)
    show.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.command == "compare":
        compare(args.first, args.second, args.top)
        return
    from app.memory import limit_arenas
    from app.settings import get_settings

    limit_arenas(get_settings().malloc_arena_max)  # as `cnnviz serve` does, before any thread
    import uvicorn

    from app.main import app

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        probe = (args.out, args.every, args.snapshot_at, args.trim_every, args.trace_from)
        threading.Thread(target=sampler, args=probe, daemon=True, name="memory probe").start()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
