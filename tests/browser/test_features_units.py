"""/features in Chromium, both languages: open a unit of a residual block (resnet18) and of a
depthwise convolution (mobilenet_v2), check the written-out total against the feature map's
value, walk back two layers, open the window in /conv, show Grad-CAM; screenshots at 1366×768,
presenter 1920×1080 and 360 px."""

import io

import numpy as np
import pytest
from PIL import Image

CASES = [  # language, model, layer, channel, unit (y, x)
    ("en", "resnet18", "layer1.0.add", 3, (7, 5)),
    ("ko", "mobilenet_v2", "features.2.conv.1.0", 0, (30, 20)),
]


def open_unit(page, lang, model, layer, channel, y, x):
    page.goto(f"/features?lang={lang}&model={model}&sample=china&layer={layer}&channel={channel}")
    page.wait_for_function(
        "() => document.getElementById('results').getAttribute('aria-busy') === 'false'",
        timeout=120_000,
    )
    page.wait_for_function(
        "n => document.getElementById('detail-heading').textContent.includes(n)", arg=layer
    )
    page.wait_for_function("c => location.search.includes('channel=' + c)", arg=str(channel))


def assert_pairs_side_by_side(page) -> None:
    """Each input channel's window and kernel sit side by side at a laptop's width (the three
    columns of figures once split a pair across two rows)."""
    tops = page.evaluate(
        """() => [...document.querySelectorAll('#unit-grids .unit-pair')].map((pair) =>
            [...pair.querySelectorAll('.unit-grid')].map((f) => f.getBoundingClientRect().top))"""
    )
    assert tops, "no window and kernel drawn"
    assert all(len(top) == 2 and abs(top[0] - top[1]) < 1 for top in tops), tops


@pytest.mark.parametrize(("lang", "model", "layer", "channel", "unit"), CASES)
def test_open_a_unit_walk_back_open_in_conv_and_explain(
    make_page, live_server, screenshot, lang, model, layer, channel, unit
):
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    y, x = unit
    open_unit(page, lang, model, layer, channel, y, x)
    # the feature result the page shows: the same request again is answered from the cache
    body = page.evaluate(
        """async ([model]) => {
        const form = new FormData();
        for (const [k, v] of Object.entries({model, sample: 'china', mode: 'learned',
                                             normalise: 'per_channel', colormap: 'viridis'}))
            form.append(k, v);
        return (await fetch('/api/features', {method: 'POST', body: form})).json();
    }""",
        [model],
    )
    info = next(item for item in body["layers"] if item["name"] == layer)
    height, width = info["tile"]
    page.locator("#channel-canvas").scroll_into_view_if_needed()
    box = page.locator("#channel-canvas").bounding_box()
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width,
                     box["y"] + (y + 0.5) * box["height"] / height)  # fmt: skip
    page.wait_for_function("() => !document.getElementById('unit-panel').hidden")
    page.wait_for_function(
        "u => decodeURIComponent(location.search).includes('unit=' + u)",
        arg=f"{layer}:{channel}:{y}:{x}",
    )
    facts = page.locator("#unit-facts")
    value = float(facts.get_attribute("data-value"))
    total = float(facts.get_attribute("data-total"))
    # the written-out total equals the unit's value ...
    assert abs(total - value) <= 1e-5 * max(abs(value), 1e-3)
    # ... which is the feature map's value: read back from the grey PNG within one level
    png = page.request.get(f"{live_server}{info['url']}?channel={channel}&colormap=gray").body()
    level = np.asarray(Image.open(io.BytesIO(png)).convert("L"))[y, x]
    low, high = info["ranges"][channel]
    assert value == pytest.approx(low + level / 255 * (high - low), abs=(high - low) / 255 + 1e-6)
    written = page.text_content("#unit-math .math-total .math-terms").replace("−", "-")
    assert float(written.rsplit("=", 1)[-1]) == pytest.approx(total, abs=1e-4)
    # the map readout and the unit panel name the cell the same way: 0-based (y, x)
    assert f"({y}, {x})" in page.text_content("#unit-heading")
    readout = page.text_content("#readout")
    assert readout.startswith(f"row {y}, column {x}:" if lang == "en" else f"{y}행 {x}열:")
    # only a convolution draws its input windows: an add leaves no empty box
    grids_hidden = page.evaluate("() => document.getElementById('unit-grids').hidden")
    assert grids_hidden == (model == "resnet18")

    conv_href = page.get_attribute("#unit-conv-link", "href") if model == "mobilenet_v2" else None
    if model == "mobilenet_v2":  # a depthwise kernel reads one channel: its own
        unit_answer = page.evaluate(
            "q => fetch(q).then(r => r.json())",
            f"/api/features/{body['id']}/unit?layer={layer}&channel={channel}&y={y}&x={x}",
        )
        assert unit_answer["detail"]["group_channels"] == 1
        assert unit_answer["detail"]["in_channels"] == [channel]
        expected_sum = unit_answer["detail"]["channel_sums"][0]
        assert_pairs_side_by_side(page)
    screenshot(page, f"features_unit_{model}_{lang}_1366")

    # walk back two layers by clicking numbers that came from earlier units
    for step in (2, 3):
        page.locator("#unit-math .unit-walk").first.click()
        page.wait_for_function(
            "n => document.querySelectorAll('#unit-crumbs li').length === n", arg=step
        )
        page.wait_for_function(
            "n => decodeURIComponent(location.search).split('~').length === n", arg=step
        )
    facts = page.locator("#unit-facts")
    walked_value = float(facts.get_attribute("data-value"))
    walked_total = float(facts.get_attribute("data-total"))
    assert abs(walked_total - walked_value) <= 1e-5 * max(abs(walked_value), 1e-3)
    if model == "resnet18":  # add → bn2 → conv2: a convolution with 64 input channels
        assert "layer1.0.conv2" in page.text_content("#unit-heading")
        assert page.locator("#unit-grids").is_visible()
        assert_pairs_side_by_side(page)
        conv_href = page.get_attribute("#unit-conv-link", "href")
        unit_answer = page.evaluate(
            "q => fetch(q).then(r => r.json())",
            f"/api/features/{body['id']}/unit?layer=layer1.0.conv2&channel={channel}&y={y}&x={x}",
        )
        expected_sum = unit_answer["detail"]["channel_sums"][0]

    # Grad-CAM over the picture, default layer with its reason
    page.click("#explain-toggle")
    page.wait_for_function(
        "() => document.getElementById('explain-overlay').src.startsWith('data:image/png')",
        timeout=60_000,
    )
    assert page.text_content("#x-layer-reason")
    assert page.input_value("#x-method") == "gradcam_pp"  # the default method
    # the explanation says so when the weights are not trained (no predictions on the page)
    untrained = not body.get("predictions")
    status = page.text_content("#explain-status")
    words = "not trained" if lang == "en" else "학습되지 않았습니다"
    assert (words in status) == untrained, status
    screenshot(page, f"features_explain_{model}_{lang}_1366")

    # open the unit's window and kernel in /conv: its first output is that channel's sum
    assert conv_href and conv_href.startswith("/conv?")
    page.goto(conv_href + f"&lang={lang}")
    cell = page.locator('#output-grids .cell[data-row="0"][data-col="0"]')
    cell.wait_for(timeout=30_000)
    page.wait_for_function(
        '() => document.querySelector(\'#output-grids .cell[data-row="0"][data-col="0"]\')'
        ".dataset.value !== undefined"
    )
    assert float(cell.get_attribute("data-value")) == pytest.approx(expected_sum, rel=1e-5,
                                                                    abs=1e-6)  # fmt: skip


@pytest.mark.parametrize(("viewport", "size"), [("projector", None), ("phone", None)])
def test_unit_panel_at_presenter_and_phone_sizes(make_page, screenshot, viewport, size):
    page = make_page(viewport)
    present = "&present=1" if viewport == "projector" else ""
    page.goto("/features?lang=ko&model=lenet5&sample=digit&layer=features.3&channel=2"
              f"&unit=features.3:2:4:5~features.2:1:9:11&why=1{present}")  # fmt: skip
    page.wait_for_function("() => !document.getElementById('unit-panel').hidden",
                           timeout=60_000)  # fmt: skip
    page.wait_for_function(
        "() => document.getElementById('explain-overlay').src.startsWith('data:image/png')",
        timeout=60_000,
    )
    assert page.locator("#unit-crumbs li").count() == 2
    assert "features.2" in page.text_content("#unit-heading")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], "the page scrolls sideways"
    # the unit player's counter shows its whole text ("12 / 100", not "12 /"), and the
    # explanation's layer select and the layer's reason lie within the viewport, the reason as
    # wide as its control (not squeezed into one grid column)
    fits = page.evaluate(
        """() => {
        const counter = document.querySelector('#unit-player .player-position');
        const select = document.getElementById('x-layer').getBoundingClientRect();
        const reason = document.getElementById('x-layer-reason').getBoundingClientRect();
        const control = document.getElementById('x-layer').closest('.control')
            .getBoundingClientRect();
        const range = document.createRange();
        range.selectNodeContents(counter);  // the text's own width (paint containment hides it)
        return {text: counter.textContent, scroll: counter.scrollWidth, client: counter.clientWidth,
                textWidth: range.getBoundingClientRect().width,
                left: select.left, right: select.right, reason: reason.width,
                control: control.width, reasonRight: reason.right};
    }"""
    )
    assert "/" in fits["text"] and fits["text"].split("/")[1].strip(), fits
    assert fits["scroll"] <= fits["client"], fits
    assert fits["textWidth"] <= fits["client"] + 0.5, fits
    assert fits["left"] >= 0 and fits["right"] <= page.viewport_size["width"], fits
    assert fits["reasonRight"] <= page.viewport_size["width"], fits
    if viewport == "phone":
        assert fits["reason"] >= 0.95 * fits["control"], fits
    else:  # presenting hides usage hints, not what the heat map shows nor why its layer
        assert page.locator("#x-layer-reason").is_visible()
        assert page.locator("#explain-method-note").is_visible()
        assert fits["reason"] >= 0.95 * fits["control"], fits
    page.locator("#unit-panel").scroll_into_view_if_needed()
    screenshot(page, f"features_unit_{viewport}")
