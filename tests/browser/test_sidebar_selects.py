"""Side-column selects show their chosen option's whole text at 1366×768 (English and Korean):
the label sits above a select that takes the column's width."""

import pytest

# Runs in the page: each visible side-column select whose chosen text (in the select's own font,
# plus its padding and arrow) is wider than the select.
CUT_OFF = """(options = false) => [...document.querySelectorAll(options ? '.inline-controls select'
    : '.sidebar select')]
  .filter((select) => select.offsetParent !== null && select.selectedOptions.length)
  .flatMap((select) => (options ? [...select.options] : [select.selectedOptions[0]])
    .map((option) => [select, option.text]))
  .map(([select, text]) => {
    const context = document.createElement('canvas').getContext('2d');
    const style = getComputedStyle(select);
    context.font = style.font;
    const needed = context.measureText(text).width + parseFloat(style.paddingLeft) + 24;
    return [select.name || select.id, text, Math.round(needed), select.clientWidth];
  })
  .filter(([, , needed, width]) => needed > width)"""

PAGES = [
    ("/conv", "#c-input option"),
    ("/pool", "#c-input option"),
    ("/features", "#c-model option"),
    ("/receptive-field", "#c-model option"),
]


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize(("path", "filled"), PAGES)
def test_sidebar_selects_are_not_cut_off(make_page, lang, path, filled):
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    # the controls are what is measured: the heavy answers (feature maps, effective fields) are
    # held back, so this test leaves no work running on the server for the next
    held = []
    page.route("**/api/**", lambda route: held.append(route) if heavy(route) else route.fallback())
    page.goto(f"{path}?lang={lang}")
    page.wait_for_selector(filled, state="attached", timeout=90_000)
    assert page.evaluate(CUT_OFF) == []


def heavy(route) -> bool:
    url = route.request.url
    return route.request.method == "POST" and ("/api/features" in url or "/effective" in url)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_activation_selects_show_every_option_whole(make_page, lang):
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/activations?lang={lang}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#c-init option").count() == 3
    assert page.evaluate(CUT_OFF, True) == []
