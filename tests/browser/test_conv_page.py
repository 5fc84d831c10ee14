"""The convolution explorer in a real browser: every number it highlights equals torch's.

The page is driven through its controls, its player and the keyboard; each check recomputes the
highlighted value with F.conv2d / F.conv_transpose2d from the exact request the page sent.
"""

from urllib.parse import urlparse

import pytest
import torch
import torch.nn.functional as F
from drivers import ExplorerPage, url_state

from app.i18n import catalogue

ACTIVATIONS = {
    None: lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": F.leaky_relu,
}


class ConvPage(ExplorerPage):
    """A /conv page plus the trace requests it made."""

    name = "conv"


def torch_output(body: dict) -> torch.Tensor:
    """O×H'×W': what torch computes for the page's own request."""
    x = torch.tensor(body["input"], dtype=torch.float64)[None]
    w = torch.tensor(body["kernels"], dtype=torch.float64)
    b = torch.tensor(body["bias"], dtype=torch.float64) if body["bias"] is not None else None
    layer = {"stride": body["stride"], "dilation": body["dilation"], "groups": body["groups"]}
    if body["transposed"]:
        y = F.conv_transpose2d(
            x, w, b, padding=body["padding"], output_padding=body["output_padding"], **layer
        )
    else:
        y = F.conv2d(x, w, b, padding=body["padding"], **layer)
    return ACTIVATIONS[body["activation"]](y)[0]


def assert_current_matches_torch(conv: ConvPage):
    o, y, x, value, text = conv.current()
    expected = torch_output(conv.requests[-1])[o, y, x].item()
    assert value == pytest.approx(expected, abs=1e-9)
    assert float(text) == pytest.approx(expected, abs=0.006)  # shown rounded to 2 decimals


def test_step_through_default_convolution_matches_torch(page, screenshot):
    conv = ConvPage(page).open()
    assert conv.position() == (1, 36)  # 8×8 digit, 3×3 kernel, valid: 6×6 outputs
    assert_current_matches_torch(conv)
    for _ in range(7):
        page.click(".player-next")
    assert conv.position() == (8, 36)
    assert conv.current()[:3] == (0, 1, 1)
    assert_current_matches_torch(conv)
    # the window of output (1, 1) is input rows 1..3, columns 1..3
    window = page.locator("#input-grids .hl-window")
    cells = {
        (int(c.get_attribute("data-row")), int(c.get_attribute("data-col"))) for c in window.all()
    }
    assert cells == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}
    # the written-out sum ends with the highlighted value
    assert page.inner_text("#kernel-math .math-total").split()[-1] == conv.current()[4]
    screenshot(page, "conv-desktop")


def test_controls_change_the_trace_and_values_still_match_torch(page, screenshot):
    conv = ConvPage(page).open("lang=en&input=random&size=9")
    conv.set_control("channels", "3")
    conv.set_control("kernel", 5)
    conv.set_control("stride", 2)
    conv.set_control("padding", "2")
    conv.set_control("filters", 2)
    conv.set_control("bias", True)
    conv.set_control("activation", "relu")
    body = conv.requests[-1]
    assert torch.tensor(body["kernels"]).shape == (2, 3, 5, 5)
    assert body["padding"] == 2 and body["stride"] == 2 and body["activation"] == "relu"
    expected = torch_output(body)
    assert conv.position() == (1, expected.numel())
    assert page.inner_text("#fact-output") == "×".join(map(str, expected.shape))
    assert page.inner_text("#fact-params") == str(2 * 3 * 5 * 5 + 2)
    for _ in range(expected.numel() // 2 + 3):  # into the second feature map
        page.click(".player-next")
    assert conv.current()[0] == 1
    assert_current_matches_torch(conv)
    # per-channel sums + bias are written out: one line per input channel
    assert (
        page.locator("#kernel-math .math-line:not(.math-total):not(.math-activation)").count() == 3
    )
    page.click(".player-last")
    shown = conv.values()
    assert torch.allclose(shown, expected.flatten(), atol=1e-9)
    screenshot(page, "conv-desktop-rgb")


def test_transposed_convolution_accumulates_to_torch(page, screenshot):
    conv = ConvPage(page).open(
        "lang=en&input=random&size=4&transposed=1&stride=2&padding=1&outpad=1&bias=1&filters=2"
    )
    body = conv.requests[-1]
    expected = torch_output(body)
    _, count = conv.position()
    assert count == 2 * 4 * 4  # one step per input cell and feature map
    page.click(".player-next")
    assert page.locator("#input-grids .hl-current").count() == 1
    assert page.locator("#output-grids .hl-window").count() == 9
    page.click(".player-last")
    shown = conv.values()
    assert torch.allclose(shown, expected.flatten(), atol=1e-9)
    screenshot(page, "conv-desktop-transposed")


def test_url_round_trip(page):
    conv = ConvPage(page).open("lang=en&kernel=5&stride=2&padding=2&filters=2&bias=1&step=3")
    controls = {
        name: page.input_value(f'#conv-controls [name="{name}"]')
        for name in ("kernel", "stride", "padding", "filters")
    }
    assert controls == {"kernel": "5", "stride": "2", "padding": "2", "filters": "2"}
    assert page.is_checked('#conv-controls [name="bias"]')
    assert conv.position()[0] == 4
    conv.set_control("dilation", 2)
    page.wait_for_function("() => new URLSearchParams(location.search).get('dilation') === '2'")
    state = url_state(page)
    assert state["kernel"] == "5" and state["stride"] == "2" and state["dilation"] == "2"
    assert state["lang"] == "en"
    # the URL alone reproduces the view
    again = ConvPage(page).open(urlparse(page.url).query)
    assert page.input_value('#conv-controls [name="dilation"]') == "2"
    assert again.requests[-1] == conv.requests[-1]


def test_random_input_is_reproduced_by_its_seed(page):
    conv = ConvPage(page).open("lang=en")
    conv.change(lambda: page.click("#new-random"))
    state = url_state(page)
    assert state["input"] == "random" and state["seed"] != "1"
    first = conv.requests[-1]["input"]
    ConvPage(page).open(urlparse(page.url).query)
    assert conv.requests[-1]["input"] == first


def test_edit_a_cell_by_clicking(page):
    conv = ConvPage(page).open("lang=en&input=random")
    page.click('#input-grids .cell[data-row="1"][data-col="2"]')
    editor = page.locator("#input-grids .cell-editor")
    conv.change(lambda: (editor.fill("-7.5"), editor.press("Enter")))
    assert conv.requests[-1]["input"][0][1][2] == -7.5
    assert url_state(page)["edits"] == "i_0_1_2_-7.5"
    page.click(".player-next")  # output (0, 1) reads input (1, 2)
    assert_current_matches_torch(conv)
    assert "-7.5" in page.inner_text("#kernel-math")


def test_hover_an_output_cell_shows_its_window(page):
    ConvPage(page).open("lang=en&padding=1")
    page.hover('#output-grids .cell[data-row="0"][data-col="7"]')
    hovered = page.locator("#input-grids .hl-hover")
    cells = {
        (int(c.get_attribute("data-row")), int(c.get_attribute("data-col"))) for c in hovered.all()
    }
    assert cells == {(r, c) for r in (-1, 0, 1) for c in (6, 7, 8)}  # padded cells included
    assert page.locator("#kernel-math .badge").count() == 1  # "hovered cell" preview
    page.mouse.move(0, 0)
    page.wait_for_function("() => document.querySelectorAll('#input-grids .hl-hover').length === 0")


def test_keyboard_steps_and_plays(page):
    conv = ConvPage(page).open("lang=en")
    page.locator("h1").click()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert conv.position() == (4, 36)
    page.keyboard.press("ArrowLeft")
    assert conv.position() == (3, 36)
    page.keyboard.press("End")
    assert conv.position() == (36, 36)
    page.keyboard.press("Home")
    assert conv.position() == (1, 36)
    page.keyboard.press(" ")
    assert page.get_attribute(".player-toggle", "aria-pressed") == "true"
    page.wait_for_function(
        "() => document.querySelector('.player-position').textContent.trim() !== '1 / 36'"
    )
    page.keyboard.press(" ")
    assert page.get_attribute(".player-toggle", "aria-pressed") == "false"
    # the URL is written at most every 200 ms; the paused step lands in it
    step = conv.position()[0] - 1
    assert step > 0
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{step}'")
    assert_current_matches_torch(conv)


def test_language_switch_keeps_state(page):
    conv = ConvPage(page).open("lang=ko&kernel=5")
    korean, english = catalogue("ko", "conv"), catalogue("en", "conv")
    assert page.inner_text("h1") == korean["conv.title"]
    assert (
        page.get_attribute(".player-toggle", "aria-label")
        == catalogue("ko", "common")["player.play"]
    )
    page.click('[data-lang-link="en"]')
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("h1") == english["conv.title"]
    assert page.get_attribute(".player-toggle", "aria-label") == "Play"
    assert url_state(page)["kernel"] == "5" and url_state(page)["lang"] == "en"
    assert conv.requests  # the page traced in both languages


def test_bad_configuration_is_shown_next_to_its_control(page):
    conv = ConvPage(page).open("lang=en&transposed=1&stride=2")
    page.select_option('#conv-controls [name="padding"]', "same")
    error = page.locator('[data-error-for="padding"]')
    error.wait_for(state="visible")
    assert "same" in error.inner_text()
    assert page.get_attribute('#conv-controls [name="padding"]', "aria-invalid") == "true"
    conv.set_control("padding", "1")
    assert not error.is_visible()
    page.guard.expect_errors("status of 422", 2)  # /shape and /trace both refused it


def test_phone_and_presenter_layouts(make_page, screenshot):
    phone = make_page("phone")
    ConvPage(phone).open("lang=en&padding=1")
    overflow = phone.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a 360 px phone"
    size = phone.evaluate(
        "getComputedStyle(document.querySelector('#input-grids .grid')).getPropertyValue('--cell')"
    )
    assert float(size.removesuffix("px")) >= 24, "input cells too small to read on a phone"
    screenshot(phone, "conv-phone")

    projector = make_page("projector")
    ConvPage(projector).open("lang=en&padding=1")
    projector.locator("h1").click()
    projector.keyboard.press("p")
    assert projector.evaluate("document.documentElement.classList.contains('presenter')")
    assert url_state(projector)["present"] == "1"
    assert projector.locator(".site-nav").is_hidden()
    font = projector.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert font >= 21
    screenshot(projector, "conv-presenter")


def test_reduced_motion_starts_slow(make_page):
    page = make_page("desktop", reduced_motion="reduce")
    ConvPage(page).open("lang=en")
    assert page.input_value(".player-speed select") == "1"
    assert url_state(page)["speed"] == "1"
    fast = make_page("desktop")
    ConvPage(fast).open("lang=en")
    assert fast.input_value(".player-speed select") == "4"


def test_grid_keyboard_moves_and_edits(page):
    conv = ConvPage(page).open("lang=en&input=random")
    page.focus("#output-grids .grid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")  # output (1, 1): its window is previewed like a hover
    assert page.locator("#input-grids .hl-hover").count() == 9
    page.keyboard.press("Enter")  # not editable: jumps the player there
    assert conv.current()[:3] == (0, 1, 1)
    page.focus("#kernel-grids .grid")
    page.keyboard.press("Enter")
    conv.change(lambda: (page.keyboard.type("3"), page.keyboard.press("Enter")))
    assert conv.requests[-1]["kernels"][0][0][0][0] == 3
    assert_current_matches_torch(conv)
