"""Shapes on /architectures are written by format.js's one `shapeText`, in the table and the
diagram alike: "6×28×28", and for a layer or block that did not run, each view's own words.

No zoo summary has a layer that does not run (GoogLeNet's auxiliary heads are off by default),
so the summary is the server's own with the classifier block and its layers marked as not run."""

import json

from test_architectures_diagram import DIAGRAM, lines
from test_architectures_page import open_page


def not_run_summary(route):
    body = route.fetch().json()
    for layer in body["layers"]:
        if layer["name"].startswith("classifier."):
            layer["output_shape"] = None
    for block in body["blocks"]:
        if block["name"] == "classifier":
            block["output_shape"] = None
    route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


def test_shapes_and_layers_that_did_not_run(page):
    page.route("**/api/models/lenet5/summary*", not_run_summary)
    open_page(page, "lang=en&model=lenet5&channels=1&height=32&width=32&num_classes=10")
    conv = page.locator('#layer-table tr[data-layer="features.0"]').inner_text()
    assert "6×28×28" in conv
    idle = page.locator('#layer-table tr[data-layer="classifier.2"]')
    assert "not run at inference (training only)" in idle.inner_text()
    assert "is-idle" in (idle.get_attribute("class") or "")
    head = page.locator('tbody[data-block="classifier"] .block-head td.mono').first
    assert head.inner_text() == "–"
    drawn = lines(page.locator(DIAGRAM))
    assert "→ 6×28×28" in drawn
    assert "→ not run" in drawn
    assert "null" not in drawn and "undefined" not in drawn
