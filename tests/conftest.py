"""Guards every test module gets, whatever its folder.

- No FastAPI dependency override outlives the module that set it. The browser tests serve the
  very `app.main.app` the API tests drive, so an override left behind by one API test (a run's
  checkpoint replaced by a file of its own) silently became every later page's answer. A module
  that leaves one fails at its end, naming the dependency, and the overrides are put back as
  they were, so the leak stops there.
- The app's start-up warm-up (`CNNVIZ_WARMUP`) is off unless the environment turns it on. Every
  lifespan start (a `TestClient`, schemathesis loading the schema at collection, a live server)
  would start a warm-up thread, and that thread parses Python source (`inspect.signature`,
  torch's jit sources: `ast.parse`) while pytest parses and compiles the next test module's
  rewritten asserts. CPython 3.11 keeps one AST recursion counter per interpreter, so the two
  threads can make it fail with "AST constructor recursion depth mismatch": a collection error
  seen in 2 of 6 runs of the schema fuzzer. `tests/app/test_warmup.py` runs the warm-up itself.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("CNNVIZ_WARMUP", "false")


def _overrides() -> dict:
    """The app's overrides now (none when no test has imported the app yet)."""
    main = sys.modules.get("app.main")
    return dict(main.app.dependency_overrides) if main is not None else {}


@pytest.fixture(autouse=True, scope="module")
def no_leftover_dependency_overrides():
    before = _overrides()
    yield
    after = _overrides()
    left = [key for key, value in after.items() if before.get(key) is not value]
    if left:
        overrides = sys.modules["app.main"].app.dependency_overrides
        overrides.clear()
        overrides.update(before)
        names = ", ".join(getattr(key, "__qualname__", repr(key)) for key in left)
        pytest.fail(f"dependency overrides left behind by this module: {names}")
