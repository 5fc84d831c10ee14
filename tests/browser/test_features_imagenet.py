"""/features with installed ImageNet weights, in Korean and English: the top-5 named in the page's
language (the same classes and probabilities the API computed), the weights' source and
published accuracy, and the "trained weights here" list with the command for missing ones.

The weights are a generated file of mobilenet_v2's exact published layout (random values)
installed in a temporary data folder; the live server (same process) is pointed at it through
its dependencies."""

from __future__ import annotations

import io
import json

import pytest
import torch

from app.deps import settings_dep
from app.feature_cache import FeatureCache, get_feature_cache
from app.main import app
from app.settings import Settings
from cnncore.imagenet import class_names
from cnncore.pretrained import (
    IMAGENET_RECIPE,
    PUBLISHED,
    InstalledWeights,
    torchvision_layout,
    write_weights,
)
from tests.cnncore.torchvision_reference import FIXTURES
from tests.cnncore.weights_server import published_file

NAME = "mobilenet_v2"


@pytest.fixture(scope="module")
def imagenet_data(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("imagenet-data"))
    body, digest = published_file(NAME, json.loads(FIXTURES.read_text())[NAME]["layout"])
    real = PUBLISHED[NAME]
    meta = InstalledWeights(NAME, "imagenet", real.url, real.file_name, digest, "imagenet-1k",
                            IMAGENET_RECIPE, real.top1, real.top5, {},
                            "2026-12-06T00:00:00+00:00")  # fmt: skip
    state = torch.load(io.BytesIO(body), weights_only=True)
    write_weights(settings.weights_dir, NAME, torchvision_layout(NAME, state), meta)
    cache = FeatureCache(settings)
    app.dependency_overrides[settings_dep] = lambda: settings
    app.dependency_overrides[get_feature_cache] = lambda: cache
    yield settings
    app.dependency_overrides.pop(settings_dep, None)
    app.dependency_overrides.pop(get_feature_cache, None)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_imagenet_top5_in_the_page_language_with_source_and_accuracy(page, imagenet_data, lang,
                                                                      screenshot):  # fmt: skip
    def features_post(response) -> bool:
        return response.url.endswith("/api/features") and response.request.method == "POST"

    with page.expect_response(features_post, timeout=120_000) as answer:
        page.goto(f"/features?lang={lang}&model={NAME}&sample=china")
    predictions = answer.value.json()["predictions"]
    page.wait_for_selector(".prediction-label", timeout=60_000)
    page.wait_for_selector(".catalogue-item", timeout=60_000)
    shown = page.locator(".prediction-label").all_text_contents()
    assert shown == [class_names(lang)[p["index"]] for p in predictions]
    values = page.locator(".prediction-value").all_text_contents()
    assert values == [f"{p['prob'] * 100:.1f}%" for p in predictions]
    note = page.text_content("#weights-note")
    assert "mobilenet_v2-b0353104.pth" in note and "71.9" in note and "90.3" in note
    items = page.locator(".catalogue-item").all_text_contents()
    vgg = next(item for item in items if item.startswith("vgg16"))
    assert "cnnviz weights get vgg16" in vgg and "71.6" in vgg
    mine = next(item for item in items if item.startswith(NAME))
    assert "cnnviz weights get" not in mine
    assert not page.locator("#catalogue-note").is_hidden()
    screenshot(page, f"features-imagenet-{lang}")
