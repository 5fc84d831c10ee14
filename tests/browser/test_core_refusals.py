"""A refusal of the core itself (cnncore/arithmetic.py: the kernel does not fit the input) is
explained next to its control in the reader's language, with the numbers of the configuration
filled in (cnncore/errors.py `code`/`ctx` → app/errors.py → static/js/api.js)."""

import pytest
from drivers import ExplorerPage, translated

SIZE, KERNEL = 3, 7  # both within the page's controls (size 3–32, kernel 1–7); 7 > 3: no output


class ConvPage(ExplorerPage):
    name = "conv"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_kernel_larger_than_the_input_is_explained_in_the_readers_language(page, screenshot, lang):
    conv = ConvPage(page).open(f"lang={lang}&size={SIZE}&kernel=3&padding=valid&stride=1")
    control = page.locator('#conv-controls [name="kernel"]')
    control.fill(str(KERNEL))
    control.press("Enter")
    control.blur()
    slots = page.locator('#conv-controls [data-error-for="kernel"]')  # the input's, the presets'
    slot = page.locator('#conv-controls [data-error-for="kernel"]:not([hidden])').first
    slot.wait_for(state="visible")
    expected = translated(lang, "error.type.conv_output_empty", kernel=KERNEL, size=SIZE,
                          padding=0, padded=SIZE, output=SIZE - KERNEL + 1)  # fmt: skip
    # /shape and /trace refuse the same configuration; each message is the catalogue's text
    assert set(slot.inner_text().split("; ")) == {expected}
    if lang == "ko":
        assert "커널(7)" in expected and "계산하면 -3" in expected
    assert "larger than the padded input (3 + 0 padding" not in slot.inner_text()  # not the msg
    assert control.get_attribute("aria-invalid") == "true"
    page.locator("#conv-controls").scroll_into_view_if_needed()
    screenshot(page, f"core-refusal-{lang}", full_page=False)
    page.guard.expect_errors("status of 422", 2)
    conv.set_control("kernel", 3)  # a kernel that fits: the message goes away
    assert all(slots.nth(i).is_hidden() for i in range(slots.count()))
