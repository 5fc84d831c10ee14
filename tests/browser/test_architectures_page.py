"""The architectures page in a real browser: its numbers are the zoo's, checked against torch."""

from urllib.parse import parse_qs, urlparse

import torch

from cnncore.models import build_model


def open_page(page, query: str = "lang=en"):
    page.goto(f"/architectures?{query}")
    page.wait_for_selector("body[data-ready=true]")
    return page


def summaries(page) -> int:
    return int(page.get_attribute("#summary", "data-summaries") or 0)


def change(page, action):
    """Run `action` and wait until a new summary is on screen."""
    before = summaries(page)
    action()
    page.wait_for_function(
        f"() => Number(document.getElementById('summary').dataset.summaries) > {before}"
    )


def number(text: str) -> int:
    return int(text.split("≈")[0].replace(",", "").strip())


def fill(page, name: str, value):
    control = page.locator(f'#arch-controls [name="{name}"]')
    control.fill(str(value))
    control.press("Enter")
    control.blur()


def test_default_resnet18_numbers_match_torch(page, screenshot):
    open_page(page)
    model = build_model("resnet18", device="meta")
    assert number(page.inner_text("#total-params")) == sum(p.numel() for p in model.parameters())
    assert number(page.inner_text("#total-macs")) == 1_814_073_344
    assert page.inner_text("#model-output") == "1000"
    leaves = [n for n, m in model.named_modules() if next(m.children(), None) is None]
    assert page.locator("#layer-table tr[data-layer]").count() == len(leaves)
    # residual blocks: the identity shortcut is drawn as its own lane, the add is written out
    block = page.locator('tbody[data-block="layer1.0"]')
    assert "residual" in block.locator(".block-head").inner_text()
    shortcut = block.locator('tr[data-layer="layer1.0.downsample"]')
    assert shortcut.get_attribute("data-lane") == "shortcut"
    assert "identity" in shortcut.inner_text()
    assert "64×56×56" in block.locator(".block-head").inner_text()
    conv1 = page.locator('tr[data-layer="conv1"]').inner_text()
    assert "7×7 /2" in conv1 and "64×112×112" in conv1 and "9,408" in conv1
    screenshot(page, "architectures-resnet18")


def test_cost_comparisons_are_shown(page):
    open_page(page)
    bottleneck = page.locator('[data-cost="bottleneck"]').inner_text()
    assert "120,422,400" in bottleneck and "12,443,648" in bottleneck
    assert "0.1033" in bottleneck and "192×28×28 → 32×28×28" in bottleneck
    separable = page.locator('[data-cost="depthwise_separable"]').inner_text()
    assert f"{1 / 512 + 1 / 9:.4f}" in separable and "1/512 + 1/3²" in separable


def test_model_change_takes_its_defaults_and_branches(page, screenshot):
    open_page(page)
    change(page, lambda: page.select_option("#a-model", "googlenet"))
    assert page.get_attribute("#summary", "data-model") == "googlenet"
    assert number(page.inner_text("#total-params")) == 6_624_904
    module = page.locator('tbody[data-block="inception3a"]')
    lanes = module.locator("tr[data-lane]").evaluate_all(
        "rows => [...new Set(rows.map(r => r.dataset.lane))]"
    )
    assert lanes == ["1", "2", "3", "4"]
    assert "256 channels" in module.locator(".block-merge").inner_text()
    change(page, lambda: page.select_option("#a-model", "lenet5"))
    assert page.input_value("#a-height") == "32"
    page.wait_for_function("() => location.search.includes('height=32')")  # throttled write
    query = parse_qs(urlparse(page.url).query)
    assert (query["channels"], query["height"], query["width"], query["num_classes"]) == (
        ["1"],
        ["32"],
        ["32"],
        ["10"],
    )
    assert number(page.inner_text("#total-params")) == 61_706
    screenshot(page, "architectures-lenet5")


def test_input_size_changes_shapes_and_url_round_trip(page):
    open_page(page, "lang=en&model=vgg16&channels=1&height=64&width=96&num_classes=10&blocks=0")
    assert page.input_value("#a-height") == "64"
    model = build_model("vgg16", device="meta", in_channels=1, num_classes=10)
    assert number(page.inner_text("#total-params")) == sum(p.numel() for p in model.parameters())
    out = model.features(torch.zeros(1, 1, 64, 96, device="meta"))
    assert "512×2×3" in page.locator('tr[data-layer="features.30"]').inner_text()
    assert tuple(out.shape[1:]) == (512, 2, 3)
    assert page.locator("tbody[data-block]").count() == 0  # flat table
    change(page, lambda: fill(page, "width", 128))
    assert "512×2×4" in page.locator('tr[data-layer="features.30"]').inner_text()
    page.wait_for_function("() => location.search.includes('width=128')")


def test_too_small_input_is_named_next_to_its_control(page):
    open_page(page, "lang=en&model=alexnet&height=40")
    slot = page.locator('[data-error-for="height"]')
    slot.wait_for(state="visible")
    assert "too small" in slot.inner_text()
    assert page.get_attribute("#a-height", "aria-invalid") == "true"
    change(page, lambda: fill(page, "height", 224))
    assert slot.is_hidden()
    page.guard.expect_errors("status of 422", 1)  # the refused summary, asked for on purpose


def test_korean_and_phone(make_page, screenshot):
    phone = make_page("phone")
    open_page(phone, "lang=ko&model=mobilenet_v2")
    assert phone.inner_text("h1") == "신경망 구조"
    assert number(phone.inner_text("#total-params")) == 3_504_872
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 360 + 1  # the table scrolls inside its box, the page does not
    screenshot(phone, "architectures-phone-ko")
