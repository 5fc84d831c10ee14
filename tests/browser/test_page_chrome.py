"""What every page carries: a missing page is a page (in the reader's language, with the site's
frame, no raw JSON), and the footer names the player's keys only where a player is."""

import pytest

from app.i18n import catalogue


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_missing_page_is_a_page_in_the_readers_language(page, screenshot, lang):
    answer = page.goto(f"/explorers/nope?lang={lang}")
    assert answer.status == 404
    page.guard.expect_errors("404", 1)  # Chromium logs the document's own status
    texts = catalogue(lang, "common")
    assert page.inner_text("h1") == texts["notfound.title"]
    assert texts["notfound.text"].replace("{path}", "/explorers/nope") in page.inner_text("main")
    assert page.locator(".site-nav").is_visible()
    screenshot(page, f"not-found-{lang}")
    page.click(f'main a[href="/?lang={lang}"]')
    page.wait_for_url("**/?lang=*")
    assert page.evaluate("document.documentElement.lang") == lang


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_player_keys_are_named_only_on_pages_with_a_player(page, lang):
    texts = catalogue(lang, "common")
    for path in ("/conv", "/pool"):
        page.goto(f"{path}?lang={lang}")
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text(".site-footer") == texts["footer.keys"]
    for path in ("/loss", "/activations", "/"):
        page.goto(f"{path}?lang={lang}")
        footer = page.inner_text(".site-footer")
        assert footer == texts["footer.keys.page"]
        assert "←" not in footer and "Home/End" not in footer
