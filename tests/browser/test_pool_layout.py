"""/pool on one screen, as /conv: at 1366×768 and in presenter mode at 1920×1080 the player, every
grid and the step's arithmetic are inside the viewport together (the player scrolled to the top),
the stride control is above the fold on load, and a 360 px phone never scrolls sideways. English
and Korean."""

import pytest
from test_conv_layout import LAPTOP, assert_fits_laptop, assert_fits_phone, assert_inside
from test_pool_page import PoolPage


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("query", ["", "&size=16&padding=1&kernel=3", "&backward=1"])
def test_laptop_shows_pool_grids_arithmetic_and_player_at_once(make_page, screenshot, lang, query):
    page = make_page("desktop")
    page.set_viewport_size(LAPTOP)
    PoolPage(page).open(f"lang={lang}{query}")
    assert_fits_laptop(page)
    if not query:
        screenshot(page, f"pool-laptop-{lang}", full_page=False)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_pool_presenter_fits_a_large_grid_on_the_screen(make_page, screenshot, lang):
    page = make_page("projector")
    PoolPage(page).open(f"lang={lang}&present=1&size=16&input=random")
    assert page.evaluate("document.documentElement.classList.contains('presenter')")
    assert_inside(page, 1920, 1080)
    screenshot(page, f"pool-presenter-{lang}", full_page=False)


def test_pool_phone_stacks_without_sideways_scrolling(make_page, screenshot):
    phone = make_page("phone")
    PoolPage(phone).open("lang=ko&size=16&backward=1")
    assert_fits_phone(phone)
    screenshot(phone, "pool-phone-ko")
