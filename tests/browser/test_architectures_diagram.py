"""The block diagram on /architectures in a real browser: its joins and branches are the models'
own (counted on the modules), its numbers are the zoo's, blocks open by keyboard, a picked box
marks its rows in the table, and it reads on a phone and in the dark theme."""

import re
from urllib.parse import parse_qs, urlparse

import pytest
from test_architectures_page import change, open_page

from cnncore.models import build_model
from cnncore.models.googlenet import INCEPTION_SETTINGS

DIAGRAM = "#diagram svg"


def numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?= (?:params|MACs))", text)]


def lines(locator) -> str:
    """The drawn text lines under an SVG element (SVG has no innerText), one per line."""
    script = "g => [...g.querySelectorAll('text')].map(t => t.textContent).join('\\n')"
    return locator.evaluate(script)


def focused_key(page) -> str | None:
    return page.evaluate("document.activeElement?.dataset?.key ?? null")


def test_resnet18_blocks_add_nodes_and_shortcuts(page):
    open_page(page)
    model = build_model("resnet18", device="meta")
    assert page.locator(f"{DIAGRAM} .dg-merge[data-kind=add]").count() == 8
    frames = page.locator(f"{DIAGRAM} .dg-frame[data-merge=add]")
    blocks = [n for n, m in model.named_modules() if type(m).__name__ == "BasicBlock"]
    assert frames.evaluate_all("fs => fs.map(f => f.dataset.block)") == blocks
    for name in blocks:
        lanes = page.locator(f'{DIAGRAM} .dg-branch[data-block="{name}"]')
        assert lanes.count() == 2
        assert page.locator(f'{DIAGRAM} .dg-branch.is-main[data-block="{name}"]').count() == 1
    identity = page.locator(f"{DIAGRAM} .dg-branch.is-shortcut .is-identity")
    projection = page.locator(f"{DIAGRAM} .dg-branch.is-shortcut .is-closed")
    assert identity.count() == 5 and projection.count() == 3
    # the main path of layer2.0 carries the parameters of its two convs and batch norms
    block = model.get_submodule("layer2.0")
    main = sum(p.numel() for n, p in block.named_parameters() if not n.startswith("downsample"))
    box = page.locator(f'{DIAGRAM} [data-key="layer2.0/0"]')
    assert numbers(lines(box))[0] == main
    assert "→ 128×28×28" in lines(box)
    shortcut = lines(page.locator(f'{DIAGRAM} [data-key="layer2.0/1"]'))
    assert numbers(shortcut)[0] == sum(p.numel() for p in block.downsample.parameters())
    assert "1×1 /2" in shortcut
    # stem, stages and head: every top-level layer or stage is drawn once
    top = page.locator(f"{DIAGRAM} > [data-role], {DIAGRAM} > .dg-frame")
    assert top.count() == 1 + len(list(model.named_children())) - 2  # input; conv1·bn1·relu fold


def test_googlenet_inception_modules_concat_their_four_branches(page):
    open_page(page, "lang=en&model=googlenet")
    joins = page.locator(f"{DIAGRAM} .dg-merge[data-kind=concat]")
    assert joins.count() == 9
    for name, (_, ch1, _, ch3, _, ch5, pool) in INCEPTION_SETTINGS.items():
        lanes = page.locator(f'{DIAGRAM} .dg-branch[data-block="{name}"]')
        assert lanes.count() == 4
        texts = [lines(lanes.nth(i)) for i in range(4)]
        channels = [int(re.search(r"^→ (\d+)×", text, re.M).group(1)) for text in texts]
        assert channels == [ch1, ch3, ch5, pool]
        concat = lines(page.locator(f'{DIAGRAM} .dg-merge[data-block="{name}"]'))
        assert concat.startswith(f"concat → {ch1 + ch3 + ch5 + pool}×")
    # the fourth branch starts with the 3×3 max pool, as in the paper's figure 2(b)
    assert "MaxPool 3×3 → pw 1×1" in lines(page.locator(f'{DIAGRAM} [data-key="inception3a/3"]'))


def test_opening_a_block_by_keyboard_shows_depthwise_and_pointwise(page):
    open_page(page, "lang=en&model=mobilenet_v2")
    assert page.locator(f"{DIAGRAM} .dg-merge[data-kind=add]").count() == 10
    assert page.locator(f"{DIAGRAM} .dg-branch.is-shortcut .is-identity").count() == 10
    frame = page.locator(f'{DIAGRAM} .dg-frame[data-block="features.3"]')
    assert frame.locator(".dg-node.is-depthwise").count() == 0  # closed: one box for the main path
    steps = frame.locator("tspan.is-depthwise, tspan.is-pointwise").all_text_contents()
    assert steps == ["pw 1×1", "dw 3×3", "pw 1×1"]  # its path still tells dw from pw
    page.locator(f'{DIAGRAM} [data-key="features.3/1"]').focus()
    page.keyboard.press("Enter")
    title = page.locator(f'{DIAGRAM} .dg-title[data-key="features.3"]')
    assert title.get_attribute("aria-expanded") == "true"
    assert focused_key(page) == "features.3"  # the focus stays on the block it opened
    assert frame.locator(".dg-node.is-depthwise").count() == 1
    assert frame.locator(".dg-node.is-pointwise").count() == 2
    assert "dw Conv 3×3" in lines(frame.locator(".dg-node.is-depthwise"))
    page.wait_for_function("() => location.search.includes('open=features.3')")
    page.keyboard.press("Tab")  # onward to the first unit inside, then open it with Space
    assert focused_key(page) == "features.3.conv.0"
    page.keyboard.press(" ")
    assert frame.locator('.dg-node[data-role=layer][data-layer="features.3.conv.0.0"]').count() == 1
    page.keyboard.press("Shift+Tab")
    assert focused_key(page) == "features.3"
    page.keyboard.press("Enter")
    assert title.get_attribute("aria-expanded") == "false"
    assert frame.locator(".dg-node.is-depthwise").count() == 0


def test_picking_a_box_marks_its_rows_and_survives_a_reload(page):
    open_page(page)
    page.locator(f'{DIAGRAM} [data-key="conv1*"]').click()  # the stem unit: opens and marks
    picked = page.locator("#layer-table tr.is-picked")
    assert picked.evaluate_all("rows => rows.map(r => r.dataset.layer)") == ["conv1", "bn1", "relu"]
    assert "conv1: 3 layers" in page.inner_text("#diagram-pick")
    page.click("#diagram-show-row")
    assert page.locator('tr[data-layer="conv1"]').is_visible()
    change(page, lambda: page.uncheck("#a-blocks"))
    assert picked.count() == 3  # the flat table keeps the marks
    page.locator(f'{DIAGRAM} .dg-title[data-key="layer4.1"]').click()  # opens it, marks its rows
    page.wait_for_function(  # the URL is written throttled: wait for both fields
        "() => { const q = new URLSearchParams(location.search);"
        " return q.get('pick') === 'layer4.1' && q.get('open') === 'conv1*,layer4.1'; }"
    )
    query = parse_qs(urlparse(page.url).query)
    assert query["open"] == ["conv1*,layer4.1"] and query["blocks"] == ["0"]
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert (
        page.locator(f'{DIAGRAM} .dg-title[data-key="layer4.1"]').get_attribute("aria-expanded")
        == "true"
    )
    marked = picked.evaluate_all("rows => rows.map(r => r.dataset.layer)")
    assert marked[0] == "layer4.1.conv1" and marked[-1] == "layer4.1.relu2" and len(marked) == 7


def test_open_all_and_a_new_model_starts_closed(page):
    open_page(page, "lang=en&model=vgg16")
    assert page.locator(f"{DIAGRAM} .dg-merge").count() == 0
    units = page.locator(f'{DIAGRAM} [data-role=unit][data-layer^="features."]')
    assert units.count() == 13  # 13 conv · ReLU units
    assert page.locator(f'{DIAGRAM} [data-role=layer][data-layer^="features."]').count() == 5
    change(page, lambda: page.select_option("#a-model", "resnet50"))
    page.click("#diagram-open-all")
    assert page.locator(f"{DIAGRAM} .dg-title[aria-expanded=false]").count() == 0
    assert page.locator(f"{DIAGRAM} .dg-merge[data-kind=add]").count() == 16
    change(page, lambda: page.select_option("#a-model", "googlenet"))
    page.wait_for_function("() => location.search.includes('open=&')")  # throttled write
    page.click("#diagram-close-all")
    assert page.locator(f"{DIAGRAM} .dg-merge[data-kind=concat]").count() == 9


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "mobilenet_v2"])
def test_screenshots_light_dark_and_phone(make_page, screenshot, name):
    for viewport, scheme in (("desktop", "light"), ("desktop", "dark"), ("phone", "light")):
        page = make_page(viewport, color_scheme=scheme)
        open_page(page, f"lang={'ko' if viewport == 'phone' else 'en'}&model={name}")
        diagram = page.locator("#diagram")
        box = diagram.bounding_box()
        assert box["width"] <= page.viewport_size["width"]
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= page.viewport_size["width"] + 1  # the diagram scrolls, not the page
        # the spine of the drawing is in view on the first screen
        centre = page.evaluate(
            "(() => { const d = document.getElementById('diagram');"
            " return d.firstChild.getAttribute('width') / 2 - d.scrollLeft; })()"
        )
        assert 0 < centre < box["width"]
        page.evaluate("document.querySelector('.arch-diagram-section').scrollIntoView()")
        screenshot(page, f"architectures-diagram-{name}-{viewport}-{scheme}", full_page=False)
