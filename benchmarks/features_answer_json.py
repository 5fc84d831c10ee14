"""Cost of turning a `POST /api/features` answer into bytes: FastAPI's own path for a returned
model (validate the instance against the response model, write its JSON with pydantic) next to
`FeaturesOut.model_dump_json()` (the same bytes, checked here), which a route could send itself.

One answer of `--model` (vgg16 by default, seeded initialisation: 40 layers of ranges) on the
flower sample, built once; then `--rounds` alternating timings of both paths in one event loop,
medians reported with their ratio (the baseline, FastAPI's path, measured in the same run).

    .venv/bin/python benchmarks/features_answer_json.py [--model vgg16] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fastapi.routing import serialize_response
from fastapi.testclient import TestClient

from app.main import app
from app.routes.features import router
from app.schemas.features import FeaturesOut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    body = TestClient(app).post("/api/features", data={"model": args.model, "sample": "flower"})
    body.raise_for_status()
    answer = FeaturesOut.model_validate_json(body.content)
    route = next(r for r in router.routes if r.path == "/api/features" and "POST" in r.methods)

    async def fastapi_path() -> bytes:
        return await serialize_response(field=route.response_field, response_content=answer,
                                        is_coroutine=True, dump_json=True)  # fmt: skip

    async def direct() -> bytes:
        return answer.model_dump_json().encode()

    async def measure() -> dict[str, list[float]]:
        """Both paths in one event loop (no loop is started inside a timing)."""
        assert await fastapi_path() == await direct() == body.content, "other bytes"
        times: dict[str, list[float]] = {"fastapi": [], "direct": []}
        for round_ in range(args.rounds):
            order = [("fastapi", fastapi_path), ("direct", direct)]
            for name, call in order if round_ % 2 else order[::-1]:
                start = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - start)
        return times

    times = asyncio.run(measure())
    old, new = (statistics.median(times[k]) * 1e3 for k in ("fastapi", "direct"))
    print(f"{args.model}: answer {len(body.content):,} bytes, {len(answer.layers)} layers")
    print(f"FastAPI's dump + validate + JSON: {old:.3f} ms (median of {args.rounds})")
    print(f"model_dump_json:                  {new:.3f} ms")
    print(f"saved {old - new:.3f} ms per answer; direct / FastAPI = {new / old:.3f}")


if __name__ == "__main__":
    main()
