"""Run an exported PyTorch file the way a student would: a fresh interpreter that can import
torch and safetensors but not cnnviz (`-S`: no site processing, so the editable install of
cnnviz in the venv is not on the path; PYTHONPATH holds only the venv's site-packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def clean_env(home: Path) -> dict[str, str]:
    return {"PYTHONPATH": SITE_PACKAGES, "PATH": os.environ.get("PATH", ""), "HOME": str(home),
            "PYTHONNOUSERSITE": "1"}  # fmt: skip


def clean_python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-S", "-s", *args], cwd=cwd, env=clean_env(cwd),
                          capture_output=True, text=True, timeout=240)  # fmt: skip


def standalone_logits(script: Path, *args: str) -> torch.Tensor:
    """The logits the file prints with --json (after checking cnnviz cannot be imported)."""
    probe = clean_python("-c", "import importlib.util as u; print(u.find_spec('cnncore'), "
                         "u.find_spec('app'), u.find_spec('safetensors') is not None)",
                         cwd=script.parent)  # fmt: skip
    assert probe.stdout.split() == ["None", "None", "True"], probe.stdout + probe.stderr
    done = clean_python(script.name, *args, "--json", cwd=script.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.tensor(json.loads(done.stdout)["logits"], dtype=torch.float64)
