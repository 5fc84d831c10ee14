"""A model switch clears the previous model's detail at once, before the new model's answer
arrives (held back here): /features (its layers, the open layer, predictions, filters) and
/architectures (the picked box). /receptive-field: test_receptive_field_models.py."""

import time

import pytest
from test_architectures_page import open_page as open_architectures


def hold(page, pattern: str, method: str) -> list:
    """Hold back requests to `pattern` with `method`; returns the list they are kept in."""
    held = []

    def handle(route):
        if route.request.method == method:
            held.append(route)
        else:
            route.fallback()

    page.route(pattern, handle)
    return held


def wait_held(page, held: list) -> None:
    deadline = time.monotonic() + 15
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)  # the route handler runs on Playwright's next dispatch
    assert held


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_features_clears_the_previous_model_at_once(page, lang):
    page.goto(f"/features?lang={lang}&model=lenet5&sample=digit&layer=features.0")
    page.wait_for_selector(".layer-card", timeout=120_000)
    page.wait_for_selector("#layer-detail:not([hidden])", timeout=60_000)
    assert page.locator("#layer-strip .layer-card").count() > 0
    held = hold(page, "**/api/features", "POST")
    page.select_option("#c-model", "tinyvgg")
    wait_held(page, held)
    assert page.locator("#layer-strip .layer-card").count() == 0
    assert page.locator("#layer-detail").is_hidden()
    assert page.locator("#prediction-list li").count() == 0
    assert page.locator("#filters-image").is_hidden()
    held[0].continue_()
    page.wait_for_function(
        "() => document.querySelectorAll('#layer-strip .layer-card').length > 0", timeout=120_000
    )
    page.wait_for_function("() => document.getElementById('results').ariaBusy === 'false'")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_architectures_drops_the_picked_box_at_once(page, lang):
    open_architectures(page, f"lang={lang}&model=resnet18")
    page.locator('#diagram svg [data-key="conv1*"]').click()
    assert page.locator("#diagram-pick").is_visible()
    held = hold(page, "**/api/models/lenet5/summary*", "GET")
    page.select_option("#a-model", "lenet5")
    wait_held(page, held)
    assert page.locator("#diagram-pick").is_hidden()
    held[0].continue_()
    page.wait_for_function("() => !new URLSearchParams(location.search).get('pick')")
