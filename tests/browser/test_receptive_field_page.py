"""/receptive-field in Chromium: a clicked unit's drawn box is the API's box, arrow keys and the
depth slider move through units and layers, the table and the chart come from the API, an
upload works, /features links here, and the page holds at phone width in Korean."""

import re
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
from drivers import url_state
from PIL import Image

ERF_DONE = "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"


def open_rf(page, query: str, lang: str = "en"):
    """Open the page and wait for its first effective field and its chart: heavy requests are
    few per client (429 beyond), so no test leaves one running for the next."""
    page.goto(f"/receptive-field?lang={lang}&{query}")
    page.wait_for_selector("body[data-ready=true]", timeout=90_000)
    wait_for_erf(page)
    page.wait_for_function(
        "() => document.getElementById('sweep-section').dataset.growth", timeout=90_000
    )


def wait_for_erf(page):
    """The effective field of the unit in the URL is on screen."""
    page.wait_for_function(
        """() => {
            const shown = document.getElementById('results').dataset.erf;
            if (!shown) return false;
            const want = new URLSearchParams(location.search);
            const got = JSON.parse(shown);
            return ['layer', 'y', 'x'].every((k) => String(got[k]) === want.get(k));
        }""",
        timeout=90_000,
    )
    page.wait_for_function(ERF_DONE, timeout=90_000)


def data(page, selector: str) -> dict[str, str]:
    return page.eval_on_selector(selector, "(node) => ({...node.dataset})")


def api_box(live_server: str, model: str, layer: str, y: int, x: int, size: tuple) -> dict:
    channels, height, width = size
    params = {"layer": layer, "y": y, "x": x, "channels": channels, "height": height,
              "width": width}  # fmt: skip
    answer = httpx.get(f"{live_server}/api/models/{model}/receptive-field", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def box_text(box: dict) -> str:
    return f"{box['y0']},{box['y1']},{box['x0']},{box['x1']}"


def click_unit(page, y: int, x: int):
    """Click the middle of unit (y, x) on the layer's map."""
    height, width = map(int, data(page, "#map-canvas")["size"].split(","))
    canvas = page.locator("#map-canvas")
    box = canvas.bounding_box()
    canvas.click(
        position={"x": (x + 0.5) * box["width"] / width, "y": (y + 0.5) * box["height"] / height}
    )


def canvas_pixel(page, selector: str, left: float, top: float) -> list[int]:
    return page.eval_on_selector(
        selector,
        "(c, [l, t]) => [...c.getContext('2d').getImageData(l, t, 1, 1).data]",
        [left, top],
    )


def test_clicking_a_unit_draws_the_box_the_api_gives(page, live_server, screenshot):
    open_rf(page, "model=lenet5&sample=digit&layer=features.3")
    assert data(page, "#map-canvas")["size"] == "10,10"
    click_unit(page, 2, 7)
    page.wait_for_function("() => document.getElementById('map-canvas').dataset.unit === '2,7'")
    wait_for_erf(page)
    assert url_state(page)["y"] == "2" and url_state(page)["x"] == "7"
    api = api_box(live_server, "lenet5", "features.3", 2, 7, (1, 32, 32))
    drawn = data(page, "#picture-canvas")
    assert drawn["box"] == box_text(api["box"]) == "4,17,14,27"
    assert drawn["clippedBox"] == box_text(api["clipped_box"])
    # the dashed rectangle sits where the box's pixels are: (column + margin) · zoom ...
    zoom, margin = int(drawn["zoom"]), int(drawn["margin"])
    box = api["box"]
    assert drawn["rect"] == ",".join(
        str(v)
        for v in (
            (box["x0"] + margin) * zoom,
            (box["y0"] + margin) * zoom,
            (box["x1"] - box["x0"] + 1) * zoom,
            (box["y1"] - box["y0"] + 1) * zoom,
        )
    )
    # ... and the solid outline of the clipped box is painted there in the highlight colour
    seen = api["clipped_box"]
    middle = ((seen["y0"] + seen["y1"] + 1) / 2 + margin) * zoom
    left = (seen["x0"] + margin) * zoom
    assert canvas_pixel(page, "#picture-canvas", left, middle)[:3] == [240, 140, 0]
    facts = page.text_content("#fact-box")
    assert facts == "rows 4–17, columns 14–27"
    assert page.text_content("#fact-size") == str(api["size"]["height"]) == "14"
    assert "Unit (2, 7) of features.3 sees a 14×14 field" in page.text_content("#box-caption")
    screenshot(page, "receptive-field-lenet5")


def test_arrow_keys_move_the_unit_by_one_jump(page, live_server):
    open_rf(page, "model=lenet5&sample=digit&layer=features.3&y=4&x=4")
    page.focus("#map-canvas")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('map-canvas').dataset.unit === '4,5'")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.getElementById('map-canvas').dataset.unit === '5,5'")
    wait_for_erf(page)
    api = api_box(live_server, "lenet5", "features.3", 5, 5, (1, 32, 32))
    assert data(page, "#picture-canvas")["box"] == box_text(api["box"])
    # the jump of features.3 is 2: one unit right moved the box two pixels
    assert api["box"]["x0"] == 10 and api["jump"] == {"height": 2, "width": 2}
    assert url_state(page)["y"] == "5" and url_state(page)["x"] == "5"


def test_depth_slider_grows_the_field_over_the_same_spot(page, live_server):
    open_rf(page, "model=tinyvgg&sample=flower&weights=initialisation&layer=block1.conv1&y=30&x=20")
    rows = page.locator("#rf-rows tr")
    assert rows.count() == 12
    sizes = []
    for index in range(10):  # the layers with a map
        page.eval_on_selector(
            "#c-depth",
            "(s, i) => { s.value = String(i); s.dispatchEvent(new Event('input')); }",
            index,
        )
        page.wait_for_function(
            "(i) => document.getElementById('depth-value').textContent.startsWith(`${i + 1} /`)",
            arg=index,
        )
        # the URL is written at most every 200 ms: read the shown unit from the page itself
        layer = page.input_value("#c-layer")
        y, x = map(int, data(page, "#map-canvas")["unit"].split(","))
        api = api_box(live_server, "tinyvgg", layer, y, x, (3, 64, 64))
        page.wait_for_function(
            "(box) => document.getElementById('picture-canvas').dataset.box === box",
            arg=box_text(api["box"]),
        )
        sizes.append(api["size"]["height"])
        centre = (api["box"]["y0"] + api["box"]["y1"]) / 2
        assert abs(centre - 30) <= api["jump"]["height"]  # the field stays over row 30
        row = page.locator(f'#rf-rows tr[data-layer="{layer}"]')
        assert row.get_attribute("aria-current") == "true"
        assert row.locator("td").nth(4).text_content() == str(api["size"]["height"])
    assert sizes == [3, 3, 5, 5, 6, 10, 10, 14, 14, 16]
    wait_for_erf(page)


def test_url_state_round_trip_and_table_pick(page):
    open_rf(page, "model=lenet5&sample=digit&layer=features.0&y=3&x=4&erf=0&growth=doubling")
    assert page.input_value("#c-model") == "lenet5"
    assert page.input_value("#c-layer") == "features.0"
    assert not page.is_checked("#c-erf")
    assert data(page, "#picture-canvas")["heat"] == "hidden"
    assert data(page, "#map-canvas")["unit"] == "3,4"
    assert data(page, "#sweep-chart svg")["points"] == "6"
    page.check("#c-erf")
    page.wait_for_function("() => new URLSearchParams(location.search).get('erf') === '1'")
    page.click('#rf-rows tr[data-layer="features.3"] button')
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('layer') === 'features.3'"
    )
    wait_for_erf(page)
    assert page.input_value("#c-layer") == "features.3"


def test_the_sweep_chart_shows_linear_against_square_root_growth(page):
    open_rf(page, "model=lenet5&sample=digit")
    lines = page.locator("#sweep-chart polyline")
    assert lines.count() == 2
    assert data(page, "#sweep-chart svg")["points"] == "16"
    caption = page.text_content("#sweep-caption")
    assert "After 16 layers: r = 33" in caption
    assert re.search(r"effective 0\.5 \(√n: 0\.5\)", caption)
    page.select_option("#c-growth", "doubling")
    page.wait_for_function(
        "() => document.getElementById('sweep-section').dataset.growth === 'doubling'"
    )
    assert "After 6 layers: r = 127" in page.text_content("#sweep-caption")


def test_an_uploaded_picture_is_what_the_unit_sees(page, tmp_path):
    open_rf(page, "model=lenet5&sample=digit&layer=features.3&y=2&x=2")
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255  # a vertical edge
    path = tmp_path / "edge.png"
    Image.fromarray(pixels).save(path)
    before = page.eval_on_selector("#picture-canvas", "(c) => c.toDataURL()")
    page.set_input_files("#c-image", str(path))
    page.wait_for_function("() => new URLSearchParams(location.search).get('sample') === ''")
    page.wait_for_function(
        "(old) => document.getElementById('picture-canvas').toDataURL() !== old", arg=before
    )
    page.wait_for_function(ERF_DONE)
    assert "edge.png" in page.text_content("#upload-name")
    assert page.input_value("#c-sample") == ""


def test_bad_unit_in_the_url_falls_back_to_the_centre(page):
    open_rf(page, "model=lenet5&sample=digit&layer=features.3&y=99&x=-1")
    assert data(page, "#map-canvas")["unit"] == "5,5"
    assert url_state(page)["y"] == "5"


def test_features_page_links_a_clicked_pixel_here(page):
    page.goto("/features?lang=en&model=lenet5&sample=digit&layer=features.3")
    page.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('features.3')",
        timeout=90_000,
    )
    canvas = page.locator("#channel-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": 7.5 * box["width"] / 10, "y": 2.5 * box["height"] / 10})
    link = page.locator("#field-link")
    link.wait_for(state="visible")
    assert "unit (2, 7) of features.3" in link.text_content()
    target = parse_qs(urlparse(link.get_attribute("href")).query)
    assert {k: v[0] for k, v in target.items()} == {
        "model": "lenet5",
        "sample": "digit",
        "weights": "trained",
        "layer": "features.3",
        "y": "2",
        "x": "7",
    }
    link.click()
    page.wait_for_url("**/receptive-field?**")
    page.wait_for_selector("body[data-ready=true]", timeout=90_000)
    wait_for_erf(page)
    page.wait_for_function("() => document.getElementById('sweep-section').dataset.growth")
    assert data(page, "#map-canvas")["unit"] == "2,7"
    assert data(page, "#picture-canvas")["box"] == "4,17,14,27"


def test_phone_korean_and_presenter(make_page, screenshot):
    phone = make_page("phone")
    open_rf(phone, "model=tinyvgg&sample=flower&weights=initialisation&layer=block2.conv1", "ko")
    assert phone.inner_text("h1") == "수용 영역"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360 + 1
    picture = phone.locator("#picture-canvas").bounding_box()
    assert picture["width"] >= 280  # the picture takes the phone's width
    screenshot(phone, "receptive-field-phone-ko")
    desktop = make_page("projector")
    open_rf(desktop, "model=tinyvgg&sample=flower&weights=initialisation&layer=block2.conv1")
    desktop.keyboard.press("p")
    desktop.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    assert "present=1" in desktop.url
    assert desktop.evaluate("document.documentElement.scrollWidth") <= 1920 + 1
    screenshot(desktop, "receptive-field-presenter")


def test_architectures_lists_each_layers_field_and_links_here(page, live_server):
    page.goto("/architectures?lang=en&model=lenet5&channels=1&height=32&width=32&num_classes=10")
    page.wait_for_selector("body[data-ready=true]", timeout=90_000)
    summary = httpx.get(f"{live_server}/api/models/lenet5/summary").json()
    cells = page.locator("td.rf-cell")
    assert cells.count() == len(summary["layers"])
    for layer in summary["layers"]:
        cell = page.locator(f'tr[data-layer="{layer["name"]}"] td.rf-cell')
        field = layer["receptive_field"]
        size = field["size"]["height"]
        expected = "all" if field["is_global"] else f"{size} /{field['stride']['height']}"
        assert cell.text_content() == expected
    page.click('tr[data-layer="features.3"] td.rf-cell a')
    page.wait_for_url("**/receptive-field?**")
    page.wait_for_selector("body[data-ready=true]", timeout=90_000)
    wait_for_erf(page)
    page.wait_for_function("() => document.getElementById('sweep-section').dataset.growth")
    assert page.input_value("#c-layer") == "features.3"
    assert data(page, "#map-canvas")["unit"] == "5,5"
