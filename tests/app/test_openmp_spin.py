"""`cnnviz` sets libgomp's spin count before torch loads libgomp; a value given is kept."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import spin_briefly

ROOT = Path(__file__).resolve().parents[2]

COMMAND = """
import os, sys
from app.cli import main
assert "torch" not in sys.modules
try:
    main(["weights", "--help"])  # the weights command imports torch
except SystemExit:
    pass
print("torch" in sys.modules, os.environ.get("GOMP_SPINCOUNT"))
"""


def spin_count_after_main(**env: str) -> str:
    ours = ("GOMP_SPINCOUNT", "CNNVIZ_OMP_SPIN_COUNT")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    done = subprocess.run([sys.executable, "-c", COMMAND], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    loaded, count = done.stdout.split()[-2:]
    assert loaded == "True"
    return count


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "1000"),  # the setting's default, set while torch was not loaded yet
        ({"CNNVIZ_OMP_SPIN_COUNT": "20000"}, "20000"),
        ({"CNNVIZ_OMP_SPIN_COUNT": "0"}, "None"),  # libgomp's own default
        ({"GOMP_SPINCOUNT": "7"}, "7"),  # the environment's value is kept
    ],
)
def test_cnnviz_sets_the_spin_count_before_torch_loads(env, expected):
    assert spin_count_after_main(**env) == expected


def test_too_late_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401 (libgomp has read its environment)

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert not spin_briefly(1000)
    assert "GOMP_SPINCOUNT" not in os.environ
