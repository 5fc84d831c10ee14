"""Fuzz every API operation from the app's own OpenAPI schema (schemathesis over ASGI).

Checks: no 5xx for any input, valid or not, and every documented response matches its schema.
Bounded so the file runs in a minute or two on two cores: a few dozen examples per operation,
fewer for those that run a network per request. Server-Sent Event streams are left out (they
never end by themselves). Runs are accepted into a manager of their own, in a temporary folder,
that queues them and never starts a worker: fuzzing checks the API, it trains nothing.
"""

from typing import Annotated

import pytest
import schemathesis
from fastapi import Body, FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.datasets.service import Datasets, get_datasets
from app.deps import settings_dep
from app.main import app
from app.runs.manager import RunLimits, RunManager, get_run_manager
from app.runs.store import SQLiteRunStore
from app.settings import get_settings

STREAMS = r"/events$"
HEAVY = r"^/api/features$"  # a forward pass through a zoo model per example
RUNS = r"^/api/runs$"
ERF_MACS = 100_000_000  # multiply-adds of one effective receptive field request

config = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 25, "mode": "all"},
        "operations": [
            {"include-path-regex": HEAVY, "generation": {"max-examples": 6}},
            {"include-path-regex": RUNS, "include-method": "POST",
             "generation": {"max-examples": 15}},
        ],
    }
)  # fmt: skip
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config).exclude(
    path_regex=STREAMS
)
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module", autouse=True)
def queued_runs_only(tmp_path_factory):
    """A run manager over a temporary database whose runs wait in the queue forever."""
    folder = tmp_path_factory.mktemp("runs")
    manager = RunManager(
        SQLiteRunStore(folder / "runs.sqlite3"),
        folder / "checkpoints",
        RunLimits(max_concurrent=0, max_queued=100_000),
    )
    app.dependency_overrides[get_run_manager] = lambda: manager
    yield manager
    del app.dependency_overrides[get_run_manager]
    manager.close()
    manager.store.close()


@pytest.fixture(scope="module", autouse=True)
def small_erf_budget():
    """Effective receptive fields within `ERF_MACS` multiply-adds: the examples of
    /api/receptive-field/sweep near its schema defaults (the page's own depth sweep: 0.6·10⁹)
    each ran a real sweep, up to 1.5 s apiece on a loaded machine (the slowest operation of
    this file: minutes in a full run). Small ones are still computed and checked, larger
    ones refused (422). The per-minute quota of heavy requests is lifted: spent by the
    sweeps, it answered 169 of /api/receptive-field/effective's 296 examples with a 429, so
    the route's own answers to them went unchecked."""
    budget = get_settings().model_copy(
        update={"max_erf_macs": ERF_MACS, "client_heavy_per_minute": 1_000_000}
    )
    app.dependency_overrides[settings_dep] = lambda: budget
    yield
    del app.dependency_overrides[settings_dep]


@pytest.fixture(scope="module", autouse=True)
def datasets_in_a_temporary_folder(tmp_path_factory):
    """Datasets the fuzzer makes go to a temporary folder, never the developer's var/."""
    from app.settings import Settings

    datasets = Datasets.from_settings(Settings(data_dir=tmp_path_factory.mktemp("datasets")))
    app.dependency_overrides[get_datasets] = lambda: datasets
    yield datasets
    del app.dependency_overrides[get_datasets]
    datasets.close()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_responses_match_the_schema(case):
    case.call_and_validate(checks=CHECKS)


# The harness must be able to fail: the same checks over a one-route app whose handler crashes at
# the top of its documented range (an off-by-one, the commonest bug of a bounded field).
planted = FastAPI()


@planted.post("/window")
def window(size: Annotated[int, Body(ge=1, le=64, embed=True)]) -> list[int]:
    return [list(range(63))[size - 1]]  # IndexError when size == 64


def test_the_fuzzer_finds_a_planted_server_error():
    operation = schemathesis.openapi.from_asgi("/openapi.json", planted)["/window"]["POST"]

    @given(case=operation.as_strategy())
    @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate])
    def fuzz(case):
        case.call_and_validate(checks=CHECKS)

    # The app's test transport re-raises a handler's exception rather than answering 500.
    with pytest.raises(IndexError):
        fuzz()
