"""/conv on one screen: at 1366×768 and in presenter mode at 1920×1080 the player, every grid and
the step's arithmetic are inside the viewport together (the player scrolled to the top), the
stride control is above the fold on load, a 360 px phone never scrolls sideways; a transposed
output's numbers are as large as the input's, kernel numbers over padding keep their colour, and
a number over its control's limit is refused with the limit shown. English and Korean."""

import pytest
from drivers import url_state
from test_conv_page import ConvPage

from app.i18n import catalogue

LAPTOP = {"width": 1366, "height": 768}


def boxes(page) -> dict[str, dict]:
    """Bounding boxes of the player, the arithmetic's section and every grid on the stage."""
    found = {"player": page.locator("#player").bounding_box()}
    found["arithmetic"] = page.locator("section.math").bounding_box()
    grids = page.locator("#stage .grid")
    for index in range(grids.count()):
        found[f"grid {index}"] = grids.nth(index).bounding_box()
    return found


def assert_inside(page, width: int, height: int):
    page.eval_on_selector("#player", "(node) => node.scrollIntoView({block: 'start'})")
    for name, box in boxes(page).items():
        assert box is not None, name
        assert box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5, (name, box)
        assert box["y"] >= -0.5 and box["y"] + box["height"] <= height + 0.5, (name, box)


def assert_fits_laptop(page):
    """On load the stride control is above the fold; the player, the grids and the arithmetic
    fit the laptop's screen together; nothing scrolls sideways."""
    stride = page.locator("#c-stride").bounding_box()
    assert stride["y"] + stride["height"] <= LAPTOP["height"], "stride below the fold on load"
    assert_inside(page, **LAPTOP)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= LAPTOP["width"]


def assert_fits_phone(phone):
    """Nothing on a 360 px phone scrolls sideways or reaches past its edges."""
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 360
    for box in boxes(phone).values():
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 + 0.5


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize(
    "query",
    [
        "",
        "&size=16&padding=2",
        "&channels=3&input=random",
        "&channels=3&filters=2&input=random",
        "&channels=3&filters=2&input=random&kernel=5&activation=relu",
        "&channels=3&filters=2&input=random&kernel=5&padding=2",
    ],
)
def test_laptop_shows_grids_arithmetic_and_player_at_once(make_page, screenshot, lang, query):
    """Three channels of 5×5 products (75 terms) are written smaller, the total still in view."""
    page = make_page("desktop")
    page.set_viewport_size(LAPTOP)
    ConvPage(page).open(f"lang={lang}{query}")
    assert_fits_laptop(page)
    if not query or "kernel=5&activation" in query:
        name = "conv-laptop-{}{}".format(lang, "-dense" if query else "")
        screenshot(page, name, full_page=False)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_presenter_fits_a_padded_grid_on_the_screen(make_page, screenshot, lang):
    page = make_page("projector")
    ConvPage(page).open(f"lang={lang}&present=1&size=16&padding=2&input=random")
    assert page.evaluate("document.documentElement.classList.contains('presenter')")
    assert page.locator("#input-grids .grid").evaluate("(g) => g.style.width") != ""
    assert_inside(page, 1920, 1080)
    screenshot(page, f"conv-presenter-{lang}", full_page=False)


def test_phone_stacks_without_sideways_scrolling(make_page, screenshot):
    phone = make_page("phone")
    ConvPage(phone).open("lang=ko&size=16&padding=2&transposed=1&stride=2")
    assert_fits_phone(phone)
    screenshot(phone, "conv-phone-transposed-ko")


FONT = "(root) => [...document.querySelectorAll(`${root} .grid:not(.is-dense) .cell`)].map((c) => parseFloat(getComputedStyle(c).fontSize))"  # noqa: E501


def test_transposed_output_is_as_readable_as_the_input(make_page, screenshot):
    page = make_page("desktop")
    page.set_viewport_size(LAPTOP)
    conv = ConvPage(page).open("lang=en&transposed=1&stride=2&step=20")
    assert conv.position()[1] == 64
    inputs = page.evaluate(FONT, "#input-grids")
    outputs = page.evaluate(FONT, "#output-grids")
    assert inputs and outputs, "numbers hidden"
    assert min(outputs) >= 9 and min(outputs) >= 0.85 * min(inputs), (inputs[:3], outputs[:3])
    screenshot(page, "conv-transposed")


def test_kernel_numbers_over_padding_keep_their_colour(page):
    ConvPage(page).open("lang=en&padding=1&preset=sobel_x&step=0")
    muted = page.locator("#kernel-grids .cell.hl-muted")
    assert muted.count() == 5  # the corner window: a row and a column of padding
    styles = muted.evaluate_all(
        "(cells) => cells.map((c) => [c.classList.contains('is-dark'),"
        " getComputedStyle(c).color, getComputedStyle(c).textShadow])"
    )
    for dark, colour, shadow in styles:
        assert colour == ("rgb(255, 255, 255)" if dark else "rgb(17, 17, 17)")
        assert shadow != "none"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_number_over_its_limit_is_refused_with_the_limit(page, lang):
    conv = ConvPage(page).open(f"lang={lang}")
    traces = conv.traces()
    size = page.locator("#c-size")
    size.fill("40")
    size.press("Enter")
    error = page.locator('[data-error-for="size"]')
    error.wait_for(state="visible")
    expected = catalogue(lang, "common")["error.type.less_than_equal"].replace("{le}", "32")
    assert error.inner_text() == expected
    assert size.get_attribute("aria-invalid") == "true"
    assert size.input_value() == "8" and url_state(page).get("size", "8") == "8"
    assert conv.traces() == traces  # nothing was clamped and sent
    conv.set_control("size", "9")
    assert not error.is_visible()
    assert conv.position()[1] == 49
