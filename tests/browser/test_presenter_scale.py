"""Presenter mode (?present=1, a teacher on a 1920×1080 projector) makes the type 1.35 times
larger (base.css --scale); the training charts (uPlot canvases: tick labels, axis titles, the
room and spacing of the ticks, the legend) and /teach's picture thumbnails with their move and
delete controls grow with it instead of staying at laptop size. Both languages; no sideways
scroll at 1920×1080; screenshots of both pages at 1366×768 and in presenter mode."""

import json

import httpx
import pytest
from conftest import save_screenshot
from drivers import no_sideways_scroll
from playwright.sync_api import expect
from test_chart_text_size import SMALLEST, chart_text
from test_teach_live import desk_dataset

from app.quotas import reset_quotas
from app.runs.manager import RunLimits
from tests.app.trained_runs import train_to_end

SCALE = 1.35  # base.css :root.presenter --scale
RUN = {"label": "presented", "model": "lenet5", "data": {"name": "digits", "limit": 300},
       "epochs": 2, "batch_size": 32, "max_steps_per_epoch": 4}  # fmt: skip
SIZES = [("laptop", ""), ("projector", "&present=1")]

# per uPlot chart: its tick and title fonts (px), the legend's font size, the room left of the
# plot (the y axis: tick labels and title) and the plot's height
CHART_SIZES = """() => Object.fromEntries(['#loss-chart', '#accuracy-chart'].map((id) => {
  const chart = document.querySelector(id);
  const over = chart.querySelector('.u-over');
  return [id, {
    tick: Number(chart.dataset.tickFont), title: Number(chart.dataset.labelFont),
    legend: parseFloat(getComputedStyle(chart.querySelector('.u-legend')).fontSize),
    yRoom: over.offsetLeft, height: over.offsetHeight,
  }];
}))"""

# the first thumbnail: its picture's side, its controls' font sizes and heights
THUMB_SIZES = """() => {
  const item = document.querySelector('#classes .thumbs li');
  const size = (node) => ({ font: parseFloat(getComputedStyle(node).fontSize),
                            height: node.getBoundingClientRect().height });
  return { picture: item.querySelector('img').getBoundingClientRect().width,
           select: size(item.querySelector('select')), button: size(item.querySelector('button')) };
}"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, runs_in, live_server):
    folder = tmp_path_factory.mktemp("presenter-scale")
    with runs_in(folder, RunLimits(max_concurrent=1)) as runs:
        yield train_to_end(
            lambda path, **kw: httpx.post(f"{live_server}{path}", timeout=60, **kw), runs, RUN
        )


@pytest.fixture(scope="module")
def dataset(live_server):
    reset_quotas()
    with httpx.Client(base_url=live_server, timeout=120) as api:
        made = desk_dataset(api, "desk", 2, seed=3)
    reset_quotas()
    return made


def at_least_scaled(normal: float, presented: float, what: str) -> None:
    # Chromium lays boxes out in 1/64 px: 1.35 × 36 px = 48.6 px is laid out as 48.59375 px
    assert presented >= SCALE * normal - 1 / 64, f"{what}: {presented} < {SCALE} × {normal}"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_training_charts_grow_with_presenter_type(make_page, finished_run, lang):
    sizes = {}
    for viewport, present in SIZES:
        page = make_page(viewport)
        page.goto(f"/train?lang={lang}&run={finished_run}{present}")
        page.wait_for_selector("#run[data-status=completed]", timeout=120_000)
        page.locator("#loss-chart").scroll_into_view_if_needed()
        sizes[viewport] = page.evaluate(CHART_SIZES)
        # the gradient bars (chart.js's SVG): the size its text is drawn at on screen
        sizes[viewport]["gradient"] = chart_text(page, "#grad-chart")[0]
        no_sideways_scroll(page)
        save_screenshot(page, f"presenter-train-{lang}-{viewport}")
    gradient = {viewport: sizes[viewport].pop("gradient") for viewport, _ in SIZES}
    for key in ("tick", "title"):
        assert gradient["laptop"][key] >= SMALLEST, gradient
        at_least_scaled(gradient["laptop"][key], gradient["projector"][key], f"gradient {key}")
    for chart, normal in sizes["laptop"].items():
        presented = sizes["projector"][chart]
        assert normal["tick"] == 11 and normal["title"] == 12  # laptop sizes as they were
        for key in ("tick", "title", "legend"):
            at_least_scaled(normal[key], presented[key], f"{chart} {key} font")
        # the tick labels' room and spacing grow with their font (text widths round to pixels)
        assert presented["yRoom"] >= 1.3 * normal["yRoom"], (chart, normal, presented)
        assert presented["height"] >= 1.3 * normal["height"], (chart, normal, presented)

    # turning presenter mode on with its key draws the charts again at the larger type
    page = make_page("laptop")
    page.goto(f"/train?lang={lang}&run={finished_run}")
    page.wait_for_selector("#run[data-status=completed]", timeout=120_000)
    page.keyboard.press("p")
    expect(page.locator("html")).to_have_class("presenter")
    expect(page.locator("#loss-chart")).to_have_attribute("data-tick-font", str(11 * SCALE))


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_gradient_chart_reads_on_a_phone(make_page, finished_run, lang):
    page = make_page("phone")
    page.goto(f"/train?lang={lang}&run={finished_run}")
    page.wait_for_selector("#run[data-status=completed]", timeout=120_000)
    page.locator("#grad-chart").scroll_into_view_if_needed()
    save_screenshot(page, f"presenter-train-{lang}-phone", full_page=False)
    gradient = chart_text(page, "#grad-chart")[0]
    assert gradient["tick"] >= SMALLEST and gradient["title"] >= SMALLEST, gradient
    no_sideways_scroll(page)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_teach_thumbnails_grow_with_presenter_type(make_page, dataset, lang):
    dataset_id, token = dataset
    sizes = {}
    for viewport, present in SIZES:
        page = make_page(viewport)
        page.goto(f"/teach?lang={lang}")
        tokens = json.dumps({dataset_id: token})
        page.evaluate(f"localStorage.setItem('cnnviz.datasetTokens', {json.dumps(tokens)})")
        page.goto(f"/teach?lang={lang}&dataset={dataset_id}{present}")
        expect(page.locator("#classes .thumbs li select").first).to_be_visible()
        page.locator("#browse-card").scroll_into_view_if_needed()
        sizes[viewport] = page.evaluate(THUMB_SIZES)
        no_sideways_scroll(page)
        save_screenshot(page, f"presenter-teach-{lang}-{viewport}", full_page=False)
    normal, presented = sizes["laptop"], sizes["projector"]
    at_least_scaled(normal["picture"], presented["picture"], "thumbnail")
    for control in ("select", "button"):
        for key in ("font", "height"):
            at_least_scaled(normal[control][key], presented[control][key], f"{control} {key}")
