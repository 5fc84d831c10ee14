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


NAV_KEYS = ["home", "lessons", "conv", "pool", "activations", "loss", "features", "architectures",
            "receptive_field", "train", "teach"]  # fmt: skip


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_header_on_a_1366_px_laptop_keeps_every_link_whole_and_the_tools_beside_the_brand(
    make_page, screenshot, lang
):
    """English needs more room than 1366 px for eleven links and the tools: its nav labels are the
    short established ones and its links wrap inside the nav, never below the tools; Korean fits
    on one line."""
    page = make_page("laptop")
    page.goto(f"/?lang={lang}")
    texts = catalogue(lang, "common")
    links = page.locator(".site-nav a")
    assert links.all_inner_texts() == [texts[f"nav.{key}"] for key in NAV_KEYS]
    boxes = [links.nth(i).bounding_box() for i in range(links.count())]
    line = min(box["height"] for box in boxes)  # the current page's link adds its 2 px underline
    for box in boxes:  # each label on one line, all of it on the screen
        assert box["height"] < 1.5 * line
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1366
    rows = {round(box["y"]) for box in boxes}
    assert len(rows) == (1 if lang == "ko" else 2)
    brand = page.locator(".brand").bounding_box()
    tools = page.locator(".header-tools").bounding_box()
    middle = tools["y"] + tools["height"] / 2
    assert brand["y"] <= middle <= brand["y"] + brand["height"]  # the tools share the brand's row
    assert page.evaluate("document.documentElement.scrollWidth") == 1366
    screenshot(page, f"header-laptop-{lang}", full_page=False)


def header_rows(page) -> list[float]:
    """The lines the header's brand, links and tools take: their middles, those within 12 px of
    each other one line."""
    parts = page.locator(".brand, .site-nav, .lang-switch, .header-tools button:visible")
    boxes = [parts.nth(i).bounding_box() for i in range(parts.count())]
    rows: list[float] = []
    for middle in sorted(box["y"] + box["height"] / 2 for box in boxes):
        if not rows or middle - rows[-1] > 12:
            rows.append(middle)
    return rows


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_header_on_a_360_px_phone_is_two_lines_with_compact_teacher_buttons(
    make_page, screenshot, lang
):
    """The brand, the language switch and the two teacher buttons (short labels) share the first
    line, the links the second; a student following a class on /join gets no teacher buttons."""
    phone = make_page("phone")
    texts = catalogue(lang, "common")
    phone.goto(f"/conv?lang={lang}")
    phone.wait_for_selector("body[data-ready=true]")
    screenshot(phone, f"header-phone-{lang}", full_page=False)
    assert len(header_rows(phone)) == 2, header_rows(phone)
    assert phone.locator(".site-header").bounding_box()["height"] <= 100
    start, present = phone.locator("#follow-start"), phone.locator("#presenter-toggle")
    assert start.inner_text() == texts["follow.start_short"]
    assert present.inner_text() == texts["presenter.on_short"]
    assert start.get_attribute("aria-label") == texts["follow.start"]
    assert phone.evaluate("document.documentElement.scrollWidth") == 360
    phone.goto(f"/join?lang={lang}")
    phone.locator(".site-header").wait_for()
    assert phone.locator("#follow-start, #presenter-toggle").count() == 0
    assert len(header_rows(phone)) == 2
    screenshot(phone, f"header-phone-join-{lang}", full_page=False)


# Where each line of `selector`'s text starts: the characters before and after every break.
LINE_BREAKS = """(selector) => {
  const text = document.querySelector(selector).firstChild;
  const range = document.createRange();
  const breaks = [];
  let top = null;
  for (let i = 0; i < text.length; i += 1) {
    range.setStart(text, i);
    range.setEnd(text, i + 1);
    const rect = range.getClientRects()[0];
    if (!rect) continue;
    if (top !== null && rect.top > top + 2) breaks.push(text.data.slice(i - 1, i + 1));
    top = rect.top;
  }
  return breaks;
}"""


@pytest.mark.parametrize("path", ["/teach", "/conv", "/train"])
def test_korean_lines_break_between_words_on_a_phone(make_page, path):
    """Korean wraps at the spaces between words: the ledes broke inside them on a 360 px phone
    ('작/게', '보세/요')."""
    phone = make_page("phone")
    phone.goto(f"{path}?lang=ko")
    phone.wait_for_selector(".lede")
    breaks = phone.evaluate(LINE_BREAKS, ".lede")
    assert breaks, "the lede fits one line: nothing checked"
    # at a space, or beside punctuation ("창(window)" may break before its bracket)
    inside = [pair for pair in breaks if all(c.isalnum() for c in pair)]
    assert inside == [], breaks
