"""/features in Chromium: layers, opening one, value readout, keyboard, upload, URL round trip."""

import io
import re

import numpy as np
import pytest
from PIL import Image


def open_features(page, query: str):
    page.goto(f"/features?lang=en&{query}")
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.wait_for_function(
        "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"
    )


def test_lenet_on_a_digit_shows_steps_predictions_filters_and_layers(page, screenshot):
    open_features(page, "model=lenet5&sample=digit")
    steps = page.locator(".step-caption").all_text_contents()
    assert [s.split(" · ")[0] for s in steps] == [
        "original",
        "resized",
        "centre crop",
        "grey",
        "normalised",
    ]
    names = page.locator(".layer-name").all_text_contents()
    assert names[0] == "1. features.0" and len(names) == 12
    assert page.locator("#filters-image").is_visible()
    assert page.text_content("#weights-note").startswith("Trained weights: 5,000 MNIST")
    assert page.locator(".prediction-label").first.text_content() == "7"  # a real MNIST 7
    # the thumbnails in view loaded (the others load lazily when the strip scrolls to them)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.layer-thumb')].slice(0, 4).every(i => i.width)"
    )
    page.locator(".layer-card").last.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelector('.layer-card:last-child img').naturalWidth"
    )
    screenshot(page, "features-lenet5-digit")


def test_opening_a_layer_and_reading_a_value(page, live_server):
    open_features(page, "model=tinyvgg&sample=circle&colormap=gray")
    page.click(".layer-card >> nth=2")  # block1.conv2
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('block1.conv2')"
    )
    page.wait_for_function("() => document.activeElement.id === 'atlas-canvas'")  # scrolled
    assert "layer=block1.conv2" in page.url
    assert page.locator(".layer-card >> nth=2").get_attribute("aria-selected") == "true"
    # pick channel 4 on the atlas (10 maps in a 3×4 grid: row 1, column 0)
    canvas = page.locator("#atlas-canvas")
    box = canvas.bounding_box()
    size = page.evaluate(
        "[document.getElementById('atlas-canvas').width, "
        "document.getElementById('atlas-canvas').height]"
    )
    tile = 60  # block1.conv2 maps are 60×60
    scale = box["width"] / size[0]
    zoom = size[0] / (4 * (tile + 1) - 1)
    x = box["x"] + (tile / 2) * zoom * scale
    y = box["y"] + (tile + 1 + tile / 2) * zoom * scale
    page.mouse.click(x, y)
    page.wait_for_function("() => location.search.includes('channel=4')")
    assert page.text_content("#channel-caption") == "Channel 5 of 10"

    # hover the enlarged channel at map pixel (row 10, col 20) and compare with the server's PNG
    channel = page.locator("#channel-canvas")
    cbox = channel.bounding_box()
    cell = cbox["width"] / tile
    page.mouse.move(cbox["x"] + (20.5) * cell, cbox["y"] + (10.5) * cell)
    page.wait_for_function(
        "() => document.getElementById('readout').textContent.startsWith('row 10, column 20')"
    )
    shown = float(page.text_content("#readout").split(": ≈ ")[1])
    answer = page.evaluate("""async () => {
        const form = new FormData();
        for (const [k, v] of Object.entries({model: 'tinyvgg', sample: 'circle', colormap: 'gray'}))
            form.append(k, v);
        return (await fetch('/api/features', {method: 'POST', body: form})).json();
    }""")
    layer = next(item for item in answer["layers"] if item["name"] == "block1.conv2")
    png = page.request.get(f"{live_server}{layer['url']}?colormap=gray").body()
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    level = grey[(tile + 1) + 10, 20]
    low, high = layer["ranges"][4]
    assert shown == pytest.approx(low + level / 255 * (high - low), abs=1e-3)


def test_keyboard_moves_through_layers_and_channels(page):
    open_features(page, "model=tinyvgg&sample=checkerboard")
    page.locator(".layer-card[aria-selected='true']").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.search.includes('layer=block1.conv2')")
    page.wait_for_function("() => document.activeElement.id === 'atlas-canvas'")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => location.search.includes('channel=5')")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "channel-canvas"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    # the readout follows once the picked channel's pictures have loaded
    page.wait_for_function(
        "() => document.getElementById('readout').textContent.startsWith('row 1, column 1:')"
    )


def test_url_state_round_trip(page):
    open_features(
        page,
        "model=alexnet&sample=gradient&colormap=magma&normalise=per_layer"
        "&layer=features.3&channel=3",
    )
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('features.3')"
    )
    assert page.input_value("#c-model") == "alexnet"
    assert page.input_value("#c-sample") == "gradient"
    assert page.input_value("#c-colormap") == "magma"
    assert page.input_value("#c-normalise") == "per_layer"
    assert "showing the first 64 of 192 channels" in page.text_content("#detail-facts")
    assert page.text_content("#channel-caption") == "Channel 4 of 192"
    assert "Not trained" in page.text_content("#weights-note")
    page.select_option("#c-colormap", "gray")
    page.wait_for_function("() => location.search.includes('colormap=gray')")
    assert "layer=features.3" in page.url and "channel=3" in page.url
    thumb = page.locator(".layer-thumb").first.get_attribute("src")
    assert "colormap=gray" in thumb


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_upload_a_picture_then_a_broken_one(page, screenshot):
    open_features(page, "model=tinyvgg&sample=china")
    stripes = np.zeros((80, 120, 3), np.uint8)
    stripes[:, ::8] = 255
    page.set_input_files(
        "#c-image",
        files=[{"name": "stripes.png", "mimeType": "image/png", "buffer": png_of(stripes)}],
    )
    page.wait_for_function(
        "() => document.getElementById('upload-name').textContent.includes('stripes')"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.step-caption')][0]?.textContent.includes('80×120')"
    )
    assert page.input_value("#c-sample") == ""
    assert "sample=&" in page.url or page.url.endswith("sample=")
    page.set_input_files(
        "#c-image",
        files=[
            {
                "name": "broken.png",
                "mimeType": "image/png",
                "buffer": b"\x89PNG\r\n\x1a\n not really",
            }
        ],
    )
    error = page.locator("[data-error-for='image']")
    error.wait_for(state="visible")
    assert re.search(r"not a readable image|damaged", error.text_content(), re.IGNORECASE)
    page.guard.expect_errors("status of 422", 1)  # the broken picture was refused
    screenshot(page, "features-upload-error")
    page.select_option("#c-sample", "circle")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.step-caption')][0]?.textContent.includes('224×224')"
    )
    assert error.is_hidden()


def test_handcrafted_mode_and_korean(make_page, screenshot):
    page = make_page("desktop", locale="ko-KR")
    page.goto("/features?lang=ko&model=lenet5&sample=checkerboard&mode=handcrafted&layer=sobel_x")
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('sobel_x')"
    )
    assert page.locator(".layer-name").first.text_content() == "1. identity"
    assert "설계된 필터" in page.text_content("#weights-note")
    assert page.locator(".prediction-label").count() == 0
    assert page.locator("#prediction-note").is_visible()
    screenshot(page, "features-handcrafted-ko")


def test_korean_page_names_the_shapes_in_korean(make_page):
    page = make_page("desktop", locale="ko-KR")
    page.goto("/features?lang=ko&model=tinyvgg&sample=flower")
    page.wait_for_selector(".prediction-label", timeout=90_000)
    labels = page.locator(".prediction-label").all_text_contents()
    assert len(labels) == 5 and set(labels) <= {"원", "사각형", "삼각형", "십자", "별", "고리"}


def test_presenter_shows_the_prediction_note_and_hides_the_run_select(make_page, screenshot):
    page = make_page("projector")
    page.goto("/features?lang=en&model=lenet5&sample=digit&mode=handcrafted&present=1")
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.wait_for_function(
        "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"
    )
    # a presenter sees why the predictions card is empty (.presenter hides .hint)
    note = page.locator("#prediction-note")
    assert note.is_visible()
    assert note.text_content() == "No predictions: designed filters do not classify."
    # bundled weights: the "Training run" select stays out of sight
    assert page.evaluate("() => document.getElementById('c-run').closest('.control').hidden")
    assert not page.locator("#c-run").is_visible()
    screenshot(page, "features-presenter-handcrafted")


def test_phone_layout_has_no_horizontal_page_scroll(make_page, screenshot):
    page = make_page("phone")
    page.goto("/features?lang=en&model=lenet5&sample=digit&layer=features.3")
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('features.3')"
    )
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    screenshot(page, "features-phone")


def test_units_of_a_linear_layer_read_back_one_by_one(page):
    open_features(page, "model=mlp&sample=digit&layer=classifier")
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('classifier')"
    )
    assert page.text_content("#channel-caption") == "10 units, row by row"
    page.focus("#channel-canvas")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.text_content("#readout").startswith("unit 3: ≈ ")
