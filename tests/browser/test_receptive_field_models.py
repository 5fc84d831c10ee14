"""/receptive-field model switching: every model in turn, forwards in English and backwards in
Korean, shows the new model's own table and box with no page error; the previous model's box,
facts and table are gone at once, before the new model's fields arrive."""

import time

import httpx
import pytest
from test_receptive_field_page import api_box, box_text, data, open_rf

ERF_OF = """(model) => {
    const results = document.getElementById('results');
    if (results.getAttribute('aria-busy') !== 'false' || !results.dataset.erf) return false;
    return JSON.parse(results.dataset.erf).model === model;
}"""
FLAT_SHOWN = """([model, rows]) => document.getElementById('c-model').value === model
    && document.getElementById('results').getAttribute('aria-busy') === 'false'
    && document.querySelectorAll('#rf-rows tr').length === rows"""


@pytest.fixture(scope="module")
def models(live_server) -> list[dict]:
    return httpx.get(f"{live_server}/api/models", timeout=120).json()


def fields_of(live_server: str, model: dict) -> dict:
    size = model["default_input"]
    answer = httpx.get(
        f"{live_server}/api/models/{model['name']}/receptive-fields", params=size, timeout=120
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def switch_and_check(page, live_server: str, model: dict) -> None:
    """Choose `model` in the select; its table and its unit's box (the API's) are shown."""
    fields = fields_of(live_server, model)
    spatial = [layer for layer in fields["layers"] if layer["output_size"]]
    page.select_option("#c-model", model["name"])
    if not spatial:  # a model without feature maps (the MLP): its table, no box
        page.wait_for_function(FLAT_SHOWN, arg=[model["name"], len(fields["layers"])])
        assert data(page, "#picture-canvas")["box"] == ""
        assert page.text_content("#fact-box") == "–"
        return
    page.wait_for_function(ERF_OF, arg=model["name"], timeout=90_000)
    shown = [row.get_attribute("data-layer") for row in page.locator("#rf-rows tr").all()]
    assert shown == [layer["name"] for layer in fields["layers"]]
    layer = page.input_value("#c-layer")
    assert layer in {item["name"] for item in spatial}
    y, x = map(int, data(page, "#map-canvas")["unit"].split(","))
    size = model["default_input"]
    api = api_box(
        live_server, model["name"], layer, y, x, (size["channels"], size["height"], size["width"])
    )
    assert data(page, "#picture-canvas")["box"] == box_text(api["box"])


@pytest.mark.parametrize("lang,backwards", [("en", False), ("ko", True)])
def test_every_model_in_turn_shows_its_own_fields(page, live_server, models, lang, backwards):
    order = models[::-1] if backwards else models
    assert order[0]["name"] != "resnet18"  # so that the first switch changes the model
    open_rf(page, "model=resnet18&sample=flower", lang)
    for model in order:
        switch_and_check(page, live_server, model)
    # the page errors (the TypeError this guards against) fail the test through the page guard


def test_a_switch_clears_the_previous_models_detail_at_once(page, live_server, models):
    open_rf(page, "model=resnet18&sample=flower")
    assert data(page, "#picture-canvas")["box"] != ""
    held = []  # lenet5's fields are held back until the test lets them through
    page.route("**/api/models/lenet5/receptive-fields*", lambda route: held.append(route))
    with page.expect_request("**/api/models/lenet5/receptive-fields*"):
        page.select_option("#c-model", "lenet5")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)  # the route handler runs on Playwright's next dispatch
    assert len(held) == 1
    # while they are on their way, nothing of resnet18 is left on screen
    assert page.locator("#rf-rows tr").count() == 0
    assert page.locator("#c-layer option").count() == 0
    assert data(page, "#picture-canvas")["box"] == ""
    assert page.text_content("#fact-box") == page.text_content("#fact-size") == "–"
    assert page.text_content("#box-caption") == ""
    held[0].continue_()
    lenet = next(model for model in models if model["name"] == "lenet5")
    page.wait_for_function(ERF_OF, arg="lenet5", timeout=90_000)
    rows = page.locator("#rf-rows tr").count()
    assert rows == len(fields_of(live_server, lenet)["layers"]) > 0
