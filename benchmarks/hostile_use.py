"""The server under hostile and careless use: per category, requests, 4xx, 5xx and peak RSS.

A real `cnnviz serve` (one process, as deployed: malloc arenas limited, uvicorn's limits) on a
free loopback port with its own data folder; 8 clients, each from its own loopback address
(127.0.0.2 … 127.0.0.9, so the per-client limits count them apart, as a classroom's laptops),
send one category at a time. The server's RSS is sampled every 50 ms from /proc.

- benign (the baseline, same run): feature maps and receptive fields of ordinary pictures;
- pictures: the red team's strips (1×6000, 6000×1, 1×10⁶, 1×4·10⁷ grey PNGs, 86 bytes to
  38 kB), a 6300² 16-bit PNG (91 kB, 40 M pixels), a header claiming 20000², a truncated PNG;
- archives, json, slow clients: the corpus of tests/app/hostile.py (the hostile-use suite):
  hostile zips to a dataset's archive upload, malformed JSON to every JSON route, clients that
  never finish their head or body (2 clients each);
- storage: the runs database deleted under the server, then the run routes asked (503s are
  the right answer there).

After each category the server is left idle past `malloc_trim_seconds` (10 s here; once heavy
requests pause that long it hands its free heap back by itself, app/memory.py), and its RSS is
read: "settled".
Target (issue 17): RSS settled after the hostile pictures within 10 % of its settled value
after the benign baseline, and no 5xx. Exit status 1 when missed.

    .venv/bin/python benchmarks/hostile_use.py [--rounds 2]
    .venv/bin/python benchmarks/hostile_use.py --json [--rounds 1]   # JSON guard, before/after
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))
import hostile  # noqa: E402
from sse_clients import HOST  # noqa: E402

CLIENTS = 8
TARGET_RSS_RATIO = 1.10
TRIM_SECONDS = 10  # the server's malloc_trim_seconds here (60 by default): shorter settles
SETTLE_S = TRIM_SECONDS + 1.5  # past it and the trim itself
Request = Callable[[httpx.Client], httpx.Response]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def header_only_png(side: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def upload(path: str, fields: dict[str, str], data: bytes) -> Request:
    files = {"image": ("picture.png", data, "image/png")}
    return lambda client: client.post(path, data=fields, files=files, timeout=600)


FEATURES = ("/api/features", {"model": "tinyvgg"})
FIELD = ("/api/receptive-field/effective", {"model": "lenet5", "weights": "trained"})


def benign() -> list[Request]:
    rng = np.random.default_rng(0)
    photo = png(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
    return [upload(*FEATURES, photo), upload(*FIELD, photo)]


def hostile_pictures() -> list[Request]:
    sixteen = Image.fromarray(np.full((6300, 6300), 1000, np.uint16))
    valid = png(Image.new("RGB", (300, 300), (40, 90, 200)))
    pictures = [png(Image.new("L", size, 128)) for size in
                [(1, 6000), (6000, 1), (1, 10**6), (4 * 10**7, 1)]]  # fmt: skip
    pictures += [png(sixteen), header_only_png(20000), valid[: len(valid) // 2]]
    return [upload(*route, data) for data in pictures for route in (FEATURES, FIELD)]


@dataclass
class Tally:
    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failed: int = 0  # no answer at all (connection refused, reset, timeout)


class RssProbe:
    """The server's resident set, sampled every 50 ms while `running`."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.running = pid, 0.0, False

    def now(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def __enter__(self) -> RssProbe:
        self.peak, self.running = self.now(), True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()


def run_category(base: str, requests: list[Request], rounds: int, clients: int = CLIENTS) -> Tally:
    """Every client sends every request `rounds` times, clients side by side."""
    tally, lock = Tally(), threading.Lock()

    def client_loop(index: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + index}")
        with httpx.Client(base_url=base, transport=transport, timeout=120) as client:
            for _ in range(rounds):
                for send in requests:
                    try:
                        answer = send(client)
                        status = answer if isinstance(answer, int) else answer.status_code
                    except (httpx.HTTPError, OSError):  # no answer (a raw socket: not closed)
                        status = 0
                    with lock:
                        tally.requests += 1
                        tally.ok += 200 <= status < 300
                        tally.client_errors += 400 <= status < 500
                        tally.server_errors += status >= 500
                        tally.failed += status == 0

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return tally


def corpus_categories(base: str, port: int, data_dir: str) -> dict[str, tuple]:
    """(requests, clients) of the hostile-use suite's categories, and the storage fault."""
    from test_upload_corpus import HOSTILE_ARCHIVES

    with httpx.Client(base_url=base, timeout=60) as client:
        made = client.post("/api/datasets", json={"name": "hostile", "classes": ["a", "b"]})
    zips = {n: d for n, (d, _w) in HOSTILE_ARCHIVES.items() if n != "one class only"}
    archive_sends = hostile.archives(made.json()["id"], made.json()["owner_token"], zips)

    def delete_database(client: httpx.Client) -> int:
        for path in Path(data_dir).glob("cnnviz.sqlite3*"):
            path.unlink()
        return client.get("/api/runs").status_code

    storage = [delete_database, *[lambda c: c.get("/api/runs").status_code] * 9]
    return {
        "archives": (list(archive_sends.values()), 2),
        "json": (list(hostile.json_bodies().values()), 2),
        "slow": (list(hostile.slow_clients(port).values()), 2),
        "storage": (storage, 1),
    }


def settled_rss(probe: RssProbe) -> float:
    """RSS once the server has idled past the trim interval (and trimmed)."""
    time.sleep(SETTLE_S)
    return probe.now()


# The JSON guard loosened to what the server allowed before it (4 MB for any JSON body, no
# count of depth, values or string bytes): the baseline of `--json`, in the same run.
UNGUARDED = {"max_json_body_bytes": 4_000_000, "max_json_depth": 10**9,
             "max_json_values": 10**9, "max_json_string_bytes": 10**9}  # fmt: skip


# The bodies whose parsing cost memory, to every JSON route but the receptive-field sweep: it
# ignores fields it does not know, so a body of only a 3 MB string runs a sweep, whose own few
# hundred MB would hide what parsing costs (the rest of the mix is small).
LARGE_JSON = ("deeply nested", "3 MB string")
PARSE_ROUTES = [path for path in hostile.JSON_ROUTES if path != "/api/receptive-field/sweep"]


def json_only(rounds: int) -> None:
    """`--json`: the large hostile JSON bodies (tests/app/hostile.py: 100 000-deep nesting, a
    3 MB string) to every JSON route from 8 clients, against a server with the JSON guard
    loosened (before) and one with the default settings (after); the server's RSS at start,
    at its peak and after, and each one's 4xx."""
    rows = []
    for name, settings in (("unguarded (before)", UNGUARDED), ("guarded (now)", {})):
        with (
            tempfile.TemporaryDirectory(prefix="cnnviz-json-") as data_dir,
            hostile.serving(Path(data_dir), **settings) as (port, _log, server),
        ):
            base, probe = f"http://{HOST}:{port}", RssProbe(server.pid)
            with httpx.Client(base_url=base) as client:  # one ordinary JSON request first
                client.post("/api/conv/shape", json={"channels": 1, "height": 5, "width": 5,
                                                     "kernel_size": 3})  # fmt: skip
            start = probe.now()
            started = time.perf_counter()
            with probe:
                sends = hostile.json_bodies(LARGE_JSON, PARSE_ROUTES)
                tally = run_category(base, list(sends.values()), rounds)
            seconds = time.perf_counter() - started
            rows.append((name, tally, start, probe.peak, probe.now(), seconds))
    print(f"{'server':<20} {'requests':>8} {'4xx':>5} {'5xx':>5} {'lost':>5} {'start':>7} "
          f"{'peak':>7} {'after':>7} {'time':>7}")  # fmt: skip
    for name, t, start, peak, after, seconds in rows:
        print(f"{name:<20} {t.requests:>8} {t.client_errors:>5} {t.server_errors:>5} "
              f"{t.failed:>5} {start:>5.0f}MB {peak:>5.0f}MB {after:>5.0f}MB "
              f"{seconds:>6.1f}s")  # fmt: skip
    growth = [peak - start for _n, _t, start, peak, _a, _s in rows]
    print(f"peak RSS growth, guarded ÷ unguarded: {growth[1]:.0f} MB ÷ {growth[0]:.0f} MB = "
          f"{growth[1] / max(growth[0], 1):.2f}; load {os.getloadavg()[0]:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="only the JSON mix, before/after")
    args = parser.parse_args()
    if args.json:
        json_only(args.rounds)
        return
    categories = {"benign": benign(), "pictures": hostile_pictures()}
    with (
        tempfile.TemporaryDirectory(prefix="cnnviz-hostile-") as data_dir,
        # deadlines as the hostile-use suite sets them, so slow clients cost 2 s, not 120
        hostile.serving(
            Path(data_dir),
            http_header_timeout_seconds=2,
            http_body_timeout_seconds=2,
            malloc_trim_seconds=TRIM_SECONDS,
        ) as (port, _log, server),  # fmt: skip
    ):
        base = f"http://{HOST}:{port}"
        probe = RssProbe(server.pid)
        rows, settled = [], {}
        print(f"server up: RSS {probe.now():.0f} MB; load {os.getloadavg()[0]:.1f}")
        for name, requests in categories.items():
            started = time.perf_counter()
            with probe:
                tally = run_category(base, requests, args.rounds)
            seconds = time.perf_counter() - started
            settled[name] = settled_rss(probe)
            rows.append((name, tally, probe.peak, settled[name], seconds))
        for name, (requests, clients) in corpus_categories(base, port, data_dir).items():
            started = time.perf_counter()
            with probe:
                tally = run_category(base, requests, 1, clients)
            rows.append((name, tally, probe.peak, probe.now(), time.perf_counter() - started))
    print(f"{'category':<10} {'requests':>8} {'2xx':>5} {'4xx':>5} {'5xx':>5} {'lost':>5} "
          f"{'peak RSS':>9} {'settled':>8} {'time':>7}")  # fmt: skip
    for name, t, peak, after, seconds in rows:
        print(f"{name:<10} {t.requests:>8} {t.ok:>5} {t.client_errors:>5} {t.server_errors:>5} "
              f"{t.failed:>5} {peak:>7.0f}MB {after:>6.0f}MB {seconds:>6.1f}s")  # fmt: skip
    ratio = settled["pictures"] / settled["benign"]
    print(f"settled RSS after pictures / after benign: {ratio:.3f} (target ≤ {TARGET_RSS_RATIO})")
    # slow clients are closed without an answer (counted "lost"); storage faults are 503s
    errors = sum(t.server_errors * (name != "storage") + t.failed * (name != "slow")
                 for name, t, *_ in rows)  # fmt: skip
    print(
        f"5xx (outside storage) or no answer (outside slow): {errors}; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    raise SystemExit(0 if ratio <= TARGET_RSS_RATIO and errors == 0 else 1)


if __name__ == "__main__":
    main()
