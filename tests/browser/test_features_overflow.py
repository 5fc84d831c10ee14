"""/features with a student's model whose values overflow float32: the layer says so in a note
(English and Korean), its range and readout show a dash instead of a made-up number, the
predictions of NaN logits and the explanation's logit and probability a dash, and the page
throws nothing."""

import pytest
from playwright.sync_api import expect

from app.i18n import messages
from tests.app.uploads import overflowing_state


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_an_overflowing_layer_is_named_and_read_as_a_dash(make_page, live_server, screenshot,
                                                         lang):  # fmt: skip
    page = make_page()
    answer = page.request.post(f"{live_server}/api/uploaded-models", multipart={
        "name": "overflow", "architecture": "tinyvgg",
        "file": {"name": "w.safetensors", "mimeType": "application/octet-stream",
                 "buffer": overflowing_state()},
        "labels": {"name": "labels.txt", "mimeType": "text/plain", "buffer": b"a\nb\nc\nd\n"},
    })  # fmt: skip
    assert answer.status == 201, answer.text()
    made = answer.json()["model"]
    try:
        name = made["model"]
        text = messages(lang, "features")
        page.goto(f"/features?lang={lang}&model={name}&sample=digit&layer=block1.relu1")
        page.wait_for_function(
            "() => document.getElementById('detail-heading').textContent.includes('block1.relu1')",
            timeout=90_000,
        )
        assert page.locator("#detail-overflow").is_hidden()  # huge (1e29) but finite
        assert page.text_content("#legend-high") != "—"
        page.click(".layer-card >> nth=2")  # block1.conv2: ±inf
        page.wait_for_function(
            "() => document.getElementById('detail-heading').textContent.includes('block1.conv2')"
        )
        note = page.locator("#detail-overflow")
        assert note.is_visible() and note.text_content() == text["features.detail.non_finite"]
        assert page.text_content("#legend-low") == "—" and page.text_content("#legend-high") == "—"
        page.wait_for_function("() => document.getElementById('readout').textContent.endsWith('—')")
        assert page.locator(".prediction-value").all_text_contents() == ["—"] * 4
        # the explanation of its top class: a logit and probability of NaN read as dashes
        page.click("#explain-toggle")
        done = text["explain.done"]
        middle = done[done.index("{score}") : done.index("{layer}")]
        expect(page.locator("#explain-status")).to_contain_text(
            middle.format(score="—", probability="—"), timeout=60_000
        )
        screenshot(page, f"features-overflow-{lang}")
    finally:  # the live server is shared: later pages list every uploaded model
        gone = page.request.delete(
            f"{live_server}/api/uploaded-models/{made['id']}",
            headers={"X-Model-Token": answer.json()["owner_token"]},
        )
        assert gone.status == 204, gone.text()
