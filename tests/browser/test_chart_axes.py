"""Chart axis titles never touch their tick labels (the /activations curve and deep-stack bars,
with ticks as wide as "1e-10", the /loss bars, the /receptive-field sweep), English and Korean,
on a laptop and in presenter mode (larger ticks)."""

import pytest

# Runs in the page: pairs (title, tick) of each chart whose screen boxes overlap.
OVERLAPS = """() => [...document.querySelectorAll('svg.chart')].flatMap((chart) => {
  const box = (node) => node.getBoundingClientRect();
  const meet = (a, b) => a.left < b.right && b.left < a.right
    && a.top < b.bottom && b.top < a.bottom;
  const ticks = [...chart.querySelectorAll('.chart-tick')].filter((t) => t.textContent);
  return [...chart.querySelectorAll('.chart-label')].flatMap((title) => ticks
    .filter((tick) => meet(box(title), box(tick)))
    .map((tick) => [chart.getAttribute('aria-label'), title.textContent, tick.textContent]));
})"""

PAGES = [
    ("/activations?deep=sigmoid&compare=relu&depth=50", "body[data-deeps]"),
    ("/loss", "body[data-answers]"),
    ("/receptive-field?model=lenet5&sample=digit", "#sweep-section[data-growth]"),
]


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("viewport", ["desktop", "projector"])
@pytest.mark.parametrize(("path", "drawn"), PAGES)
def test_axis_titles_clear_the_ticks(make_page, lang, viewport, path, drawn):
    page = make_page(viewport)
    # the receptive field's heatmap is not a chart: held back, it leaves no work on the server
    page.route("**/api/receptive-field/effective", lambda route: None)
    present = "&present=1" if viewport == "projector" else ""
    page.goto(f"{path}{'&' if '?' in path else '?'}lang={lang}{present}")
    page.wait_for_selector(drawn, state="attached", timeout=90_000)
    titles = page.locator("svg.chart .chart-label")
    assert titles.count() >= 1
    assert page.evaluate(OVERLAPS) == []
