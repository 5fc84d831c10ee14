"""/features in Chromium: the flower through TinyVGG is called unlike its shapes, with the score
the server measured; a held-out shape is called like them. Both languages."""

import re

import pytest

from cnncore.familiarity import familiarity
from cnncore.familiarity_sets import held_out
from cnncore.images import encode_png, sample_image
from cnncore.weights import load_model

pytestmark = pytest.mark.browser

WORDS = {"en": ("unlike", "like"), "ko": ("많이 다릅니다", "닮았습니다")}


def numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def note_after_answer(page):
    page.wait_for_function(
        "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"
    )
    note = page.locator("#familiarity-note")
    note.wait_for(state="visible")
    return note


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_flower_is_unlike_tinyvggs_shapes_and_a_held_out_shape_is_not(make_page, screenshot, lang):
    tinyvgg = load_model("tinyvgg")
    flower = familiarity(tinyvgg, sample_image("flower"))
    page = make_page("desktop", locale="ko-KR" if lang == "ko" else "en-GB")
    page.goto(f"/features?lang={lang}&model=tinyvgg&sample=flower")
    page.wait_for_selector(".layer-card", timeout=90_000)  # a cold server loads the model first
    note = note_after_answer(page)
    assert "is-unlike" in note.get_attribute("class")
    text = note.text_content()
    assert WORDS[lang][0] in text
    # the score and the line, as the server measured them (shown to one decimal)
    assert round(flower.score, 1) in numbers(text)
    assert round(flower.threshold, 1) in numbers(text)
    assert "95%" in text and " %" not in text  # written as the page writes percentages
    # the note sits with the predictions, above the list
    assert (
        page.evaluate("() => document.getElementById('familiarity-note').nextElementSibling.id")
        == "prediction-list"
    )
    screenshot(page, f"features-familiarity-flower-{lang}")

    shape = held_out(tinyvgg.weights.trained).evaluation[0]
    known = familiarity(tinyvgg, shape)
    page.set_input_files(
        "#c-image",
        files=[{"name": "shape.png", "mimeType": "image/png", "buffer": encode_png(shape.rgb)}],
    )
    page.wait_for_function(
        "() => !document.getElementById('familiarity-note').classList.contains('is-unlike')"
    )
    note = note_after_answer(page)
    text = note.text_content()
    assert WORDS[lang][1] in text and WORDS[lang][0] not in text
    assert round(known.score, 1) in numbers(text)
    screenshot(page, f"features-familiarity-shape-{lang}")
