"""`cnnviz weights list | get | add | remove` and `GET /api/weights`, on a temporary data folder,
downloading only from a loopback server (tests/cnncore/weights_server.py)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.deps import settings_dep
from app.main import app
from app.settings import Settings
from app.weights_cli import add_weights_arguments, weights_command
from cnncore import pretrained
from tests.cnncore.torchvision_reference import FIXTURES
from tests.cnncore.weights_server import Served, entry_for, published_file, weights_server

NAME = "mobilenet_v2"
ROOT = Path(__file__).resolve().parents[2]


def run(settings: Settings, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_weights_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = weights_command(parser.parse_args(argv), settings, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def published() -> tuple[bytes, str]:
    return published_file(NAME, json.loads(FIXTURES.read_text())[NAME]["layout"])


@pytest.fixture
def server(published, monkeypatch):
    """A loopback mirror serving mobilenet_v2 under a name carrying its digest prefix; the
    catalogue entry points there (the real file cannot be made with a chosen digest)."""
    body, digest = published
    with weights_server() as running:
        entry = entry_for(running, NAME, digest)
        running.files[entry.file_name] = Served(body)
        monkeypatch.setitem(pretrained.PUBLISHED, NAME, entry)
        yield running


def test_get_installs_from_the_mirror_with_a_progress_bar_then_list_and_remove(
    tmp_path, server, published
):
    settings = Settings(data_dir=tmp_path, weights_mirror=server.url(""))
    code, _, err = run(settings, "get", NAME)
    assert code == 0, err
    assert f"{NAME}: installed" in err and "100%" in err  # tqdm's bar reached the end
    assert [p.name for p in settings.weights_dir.iterdir()] == [f"{NAME}.safetensors"]
    code, out, _ = run(settings, "list")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith(NAME))
    assert "imagenet" in line and published[1][:16] in line and "71.878/90.286" in line
    assert f"cnnviz weights get {NAME}" not in out and "cnnviz weights get vgg16" in out
    assert run(settings, "remove", NAME)[0] == 0
    assert list(settings.weights_dir.iterdir()) == []
    assert run(settings, "remove", NAME)[0] == 1


def test_get_refuses_a_wrong_file_with_a_clear_line_and_a_nonzero_status(tmp_path, server):
    server.files[pretrained.PUBLISHED[NAME].file_name] = Served(b"not the published file")
    settings = Settings(data_dir=tmp_path, weights_mirror=server.url(""))
    code, _, err = run(settings, "get", NAME)
    assert code == 1
    assert f"cnnviz weights: {NAME}: " in err and "does not start with" in err
    assert list(settings.weights_dir.iterdir()) == []


def test_get_without_a_network_exits_nonzero_through_the_real_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CNNVIZ_DATA_DIR": str(tmp_path),
           "CNNVIZ_WEIGHTS_MIRROR": "http://weights.invalid/models",
           "CNNVIZ_WEIGHTS_DOWNLOAD_TIMEOUT": "3"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "app.cli", "weights", "get", "resnet18"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "cannot be reached" in done.stderr and "cnnviz weights add" in done.stderr
    assert not (tmp_path / "weights" / "resnet18.safetensors").exists()


def test_add_checks_keys_and_shapes_and_lists_what_is_wrong(tmp_path, published):
    settings = Settings(data_dir=tmp_path)
    state = torch.load(io.BytesIO(published[0]), weights_only=True)
    del state["classifier.1.bias"]
    state["classifier.1.weight"] = torch.zeros(10, 1280)
    file = tmp_path / "broken.pth"
    torch.save(state, file)
    code, _, err = run(settings, "add", NAME, str(file))
    assert code == 1
    assert "missing (1): classifier.1.bias" in err
    assert "wrong shape (1): classifier.1.weight: file (10, 1280), model (1000, 1280)" in err
    assert not settings.weights_dir.joinpath(f"{NAME}.safetensors").exists()
    good = tmp_path / "good.pth"
    good.write_bytes(published[0])
    assert run(settings, "add", NAME, str(good))[0] == 0
    assert run(settings, "add", "lenet7", str(good))[0] == 1


def test_the_api_lists_every_model_with_its_weights_and_the_command_for_missing_ones(
    tmp_path, published
):
    settings = Settings(data_dir=tmp_path)
    good = tmp_path / "mine.pth"
    good.write_bytes(published[0])
    assert run(settings, "add", NAME, str(good))[0] == 0
    app.dependency_overrides[settings_dep] = lambda: settings
    try:
        rows = {row["model"]: row for row in TestClient(app).get("/api/weights").json()}
    finally:
        app.dependency_overrides.pop(settings_dep, None)
    mobilenet = rows[NAME]
    assert mobilenet["chosen"] == "imported"
    assert [w["kind"] for w in mobilenet["weights"]] == ["imported", "initialisation"]
    assert mobilenet["weights"][0]["sha256"] == published[1]
    assert (
        mobilenet["weights"][0]["size"]
        == (settings.weights_dir / f"{NAME}.safetensors").stat().st_size
    )
    assert mobilenet["command"] == f"cnnviz weights get {NAME}"  # imported is not the published
    assert rows["vgg16"]["published"]["top1"] == 71.592
    assert rows["vgg16"]["published"]["file"] == "vgg16-397923af.pth"
    assert rows["lenet5"]["chosen"] == "bundled" and rows["lenet5"]["command"] is None
    bundled = rows["lenet5"]["weights"][0]
    assert bundled["kind"] == "bundled" and bundled["file"] == "lenet5.safetensors"
    from cnncore.weights import WEIGHTS_DIR

    assert (
        bundled["sha256"]
        == hashlib.sha256((WEIGHTS_DIR / "lenet5.safetensors").read_bytes()).hexdigest()
    )
    assert rows["mobilenet_v1"]["published"] is None and rows["mobilenet_v1"]["command"] is None


def test_features_with_imagenet_weights_name_the_top5_in_both_languages(tmp_path, published):
    """An installed torchvision file: top-5 ImageNet classes with their English and Korean names,
    the probabilities softmax's own, the source and published accuracy beside them."""
    from app.feature_cache import FeatureCache, get_feature_cache
    from cnncore.imagenet import class_names
    from cnncore.pretrained import (
        IMAGENET_RECIPE,
        InstalledWeights,
        torchvision_layout,
        write_weights,
    )

    settings = Settings(data_dir=tmp_path)
    real = pretrained.PUBLISHED[NAME]
    state = torch.load(io.BytesIO(published[0]), weights_only=True)
    meta = InstalledWeights(NAME, "imagenet", real.url, real.file_name, published[1],
                            "imagenet-1k", IMAGENET_RECIPE, real.top1, real.top5, {},
                            "2026-12-06T00:00:00+00:00")  # fmt: skip
    write_weights(settings.weights_dir, NAME, torchvision_layout(NAME, state), meta)
    cache = FeatureCache(settings)
    app.dependency_overrides[settings_dep] = lambda: settings
    app.dependency_overrides[get_feature_cache] = lambda: cache
    try:
        body = TestClient(app).post("/api/features", data={"model": NAME, "sample": "china"}).json()
    finally:
        app.dependency_overrides.pop(settings_dep, None)
        app.dependency_overrides.pop(get_feature_cache, None)
    assert body["weights"]["source"] == "imagenet"
    assert body["weights"]["installed"]["top1"] == 71.878
    assert body["weights"]["installed"]["recipe"]["resize"] == 256
    assert [step["step"] for step in body["preprocessing"]] == ["original", "resize", "crop",
                                                                "normalise"]  # fmt: skip
    assert body["preprocessing"][1]["size"] == [256, 383]  # china.jpg 427×640: 640·256/427
    predictions = body["predictions"]
    assert len(predictions) == 5
    loaded = cache.model(NAME).loaded
    from cnncore.features import prepare_input
    from cnncore.images import sample_image

    with torch.no_grad():
        probs = torch.softmax(
            loaded.model(prepare_input(loaded.weights, sample_image("china")).tensor)[0], 0
        )
    top = probs.topk(5)
    assert [p["index"] for p in predictions] == top.indices.tolist()
    for p, expected in zip(predictions, top.values.tolist(), strict=True):
        assert abs(p["prob"] - expected) < 1e-6
        assert p["names"] == {"en": class_names("en")[p["index"]],
                              "ko": class_names("ko")[p["index"]]}  # fmt: skip
        assert p["label"] == class_names("en")[p["index"]]
