"""A number field typed wrong says so beside itself, in the reader's language, and the page keeps
its last good value (nothing clamped, nothing sent): a fraction in a whole-number field, an emptied
field, a seed outside its range."""

import pytest
from drivers import url_state

from app.i18n import catalogue


@pytest.mark.parametrize(("path", "lang"), [("/conv", "en"), ("/pool", "ko")])
def test_wrong_numbers_are_refused_beside_their_field(page, path, lang):
    texts = catalogue(lang, "common")
    page.goto(f"{path}?lang={lang}&seed=5")
    page.wait_for_selector("body[data-ready=true]")
    form = page.locator("main form.controls")
    cases = [
        ("size", "4.5", texts["error.type.int_from_float"]),
        ("size", "", texts["error.type.missing"]),
        ("seed", "-5", texts["error.type.greater_than_equal"].replace("{ge}", "0")),
        ("seed", "1000000", texts["error.type.less_than_equal"].replace("{le}", "999999")),
    ]
    for name, typed, message in cases:
        field = form.locator(f'[name="{name}"]')
        before = field.input_value()
        field.fill(typed)
        field.press("Enter")
        slot = form.locator(f'[data-error-for="{name}"]')
        slot.wait_for(state="visible")
        assert slot.inner_text() == message
        assert field.get_attribute("aria-invalid") == "true"
        assert field.input_value() == before  # the last good value stays, unclamped
    page.wait_for_function("() => new URLSearchParams(location.search).get('seed') === '5'")
    state = url_state(page)
    assert (state["seed"], state.get("size", "8")) == ("5", "8")
    field = form.locator('[name="size"]')  # a good value clears the message and is taken
    field.fill("9")
    field.press("Enter")
    form.locator('[data-error-for="size"]').wait_for(state="hidden")
    page.wait_for_function("() => new URLSearchParams(location.search).get('size') === '9'")
