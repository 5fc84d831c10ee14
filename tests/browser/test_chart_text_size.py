"""The shared SVG charts (static/js/chart.js) draw their text at a readable size wherever their
card is narrow: tick labels and axis titles at least 11 px on screen on a 1366×768 laptop and at
360 px phone width, at least 1.35 times that in presenter mode at 1920×1080 (base.css --scale),
no label cut off at the chart's edge nor two tick labels over each other, and no sideways scroll.
Pages: /activations (curve and deep-stack bars), /loss (probability bars), /receptive-field (the
sweep), and the same charts framed in a lesson; /train's gradient bars are checked in
test_presenter_scale.py. Korean and English."""

import pytest
from conftest import save_screenshot
from drivers import no_sideways_scroll

SCALE = 1.35  # base.css :root.presenter --scale
SMALLEST = 11  # px on screen, the least a student reads from a laptop

# Runs in the page: per chart in `root`, the smallest drawn size (font size × the SVG's scale on
# screen) of its tick labels and of its titles, the labels that reach past its edges, and pairs
# of tick labels whose boxes overlap.
CHART_TEXT = """(root) => [...document.querySelectorAll(`${root} svg.chart`)].map((svg) => {
  const box = svg.getBoundingClientRect();
  const scale = box.width / svg.viewBox.baseVal.width;
  const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim());
  const drawn = (cls) => Math.min(...texts.filter((t) => t.classList.contains(cls))
    .map((t) => parseFloat(getComputedStyle(t).fontSize) * scale));
  const rect = (t) => t.getBoundingClientRect();
  const out = texts.filter((t) => { const r = rect(t);
    return r.left < box.left - 0.5 || r.right > box.right + 0.5
      || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5; }).map((t) => t.textContent);
  const ticks = texts.filter((t) => t.classList.contains('chart-tick'));
  const meet = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5
    && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const overlaps = ticks.flatMap((a, i) => ticks.slice(i + 1)
    .filter((b) => meet(rect(a), rect(b))).map((b) => [a.textContent, b.textContent]));
  return { chart: svg.parentElement.id, tick: drawn('chart-tick'), title: drawn('chart-label'),
           width: box.width, out, overlaps };
})"""

VIEWPORTS = [("laptop", ""), ("projector", "&present=1"), ("phone", "")]

PAGES = [
    ("activations", "/activations?deep=sigmoid&compare=relu&depth=50", "body[data-deeps]"),
    ("loss", "/loss?", "body[data-answers]"),
    ("rf", "/receptive-field?model=lenet5&sample=digit", "#sweep-section[data-growth]"),
]


def chart_text(page, root: str = "") -> list[dict]:
    """Each chart's drawn text sizes, after checking that none is cut off or overlapping."""
    charts = page.evaluate(CHART_TEXT, root)
    assert charts, f"no chart in {root or 'the page'}"
    for chart in charts:
        assert chart["out"] == [], f"{chart['chart']}: labels cut off at the edge {chart['out']}"
        assert chart["overlaps"] == [], f"{chart['chart']}: tick labels overlap {chart['overlaps']}"
    return charts


def check_sizes(sizes: dict[str, list[dict]]) -> None:
    """Laptop and phone text at least SMALLEST px, presenter at least SCALE × laptop."""
    for viewport in ("laptop", "phone"):
        for chart in sizes[viewport]:
            for key in ("tick", "title"):
                assert chart[key] >= SMALLEST, (viewport, chart)
    for laptop, presented in zip(sizes["laptop"], sizes["projector"], strict=True):
        for key in ("tick", "title"):
            assert presented[key] >= SCALE * laptop[key] - 0.01, (laptop, presented)


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize(("name", "path", "drawn"), PAGES)
def test_chart_text_is_readable_at_every_size(make_page, lang, name, path, drawn):
    sizes = {}
    for viewport, present in VIEWPORTS:
        page = make_page(viewport)
        # the receptive field's heatmap is not a chart: held back, it leaves no work on the server
        page.route("**/api/receptive-field/effective", lambda route: None)
        page.goto(f"{path}&lang={lang}{present}")
        page.wait_for_selector(drawn, state="attached", timeout=90_000)
        page.locator("svg.chart").last.scroll_into_view_if_needed()
        sizes[viewport] = chart_text(page)
        no_sideways_scroll(page)
        save_screenshot(page, f"chart-text-{name}-{lang}-{viewport}", full_page=False)
    check_sizes(sizes)


def test_the_p_key_redraws_the_charts_at_presenter_size(make_page):
    page = make_page("laptop")
    page.goto("/loss?lang=en")
    page.wait_for_selector("body[data-answers]", state="attached", timeout=90_000)
    laptop = chart_text(page)
    page.keyboard.press("p")
    page.wait_for_function(
        "(least) => parseFloat(getComputedStyle(document.querySelector('.chart-tick')).fontSize)"
        " * document.querySelector('svg.chart').getBoundingClientRect().width"
        " / document.querySelector('svg.chart').viewBox.baseVal.width >= least",
        arg=SCALE * laptop[0]["tick"] - 0.01,
    )
    check_sizes({"laptop": laptop, "phone": [], "projector": chart_text(page)})
    no_sideways_scroll(page)


# Lessons that frame an explorer drawing charts (app/lessons.py), and what its page sets once drawn
LESSON_CHARTS = [("activations", "body[data-deeps]"), ("softmax-loss", "body[data-answers]")]


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize(("slug", "drawn"), LESSON_CHARTS)
def test_charts_framed_in_a_lesson_are_readable_at_every_size(make_page, lang, slug, drawn):
    """The explorer inside a lesson's frame is narrower than its own page (the lesson's text
    beside it): its charts keep the same readable sizes, and presenter mode reaches the frame."""
    sizes = {}
    for viewport, present in VIEWPORTS:
        page = make_page(viewport)
        page.goto(f"/lessons/{slug}?lang={lang}{present}")
        page.wait_for_selector("body[data-ready=true]")
        frame = page.locator("#explorer-frame").element_handle().content_frame()
        frame.wait_for_selector(drawn, state="attached", timeout=90_000)
        frame.wait_for_selector("svg.chart text.chart-tick", state="attached")
        assert frame.evaluate("document.documentElement.classList.contains('presenter')") == (
            viewport == "projector"
        )
        sizes[viewport] = chart_text(frame)
        no_sideways_scroll(page)
        page.locator("#explorer-frame").scroll_into_view_if_needed()
        save_screenshot(page, f"chart-text-lesson-{slug}-{lang}-{viewport}", full_page=False)
    check_sizes(sizes)
