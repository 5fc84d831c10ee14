"""/teach's live prediction lists the runs trained on the dataset by a name a person reads: a
run without a label is called by its model's title, the dataset's name and its start time in the
page's language, never by its hex id — which stays at hand as the option's tooltip and the line
under the list. Both languages; screenshots at 1366×768, presenter 1920×1080 and a 360 px phone."""

import json
import re
from datetime import datetime

import httpx
import pytest
from conftest import save_screenshot
from playwright.sync_api import expect
from test_teach_live import desk_dataset, train_on

from app.quotas import reset_quotas

DATASET = "desk things"
RUN_ID_LINE = {"ko": "학습 실행 ID: {id}", "en": "Run id: {id}"}
STARTED = {"ko": "LeNet-5 · desk things · (.+) 시작 · 데이터셋 버전 {version}",
           "en": "LeNet-5 · desk things · started (.+) · dataset version {version}"}  # fmt: skip
# what sticks out past the viewport's right edge (tag, id or class, right edge)
WIDER = """(width) => [...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > width + 0.5)
  .filter((e) => !e.parentElement.closest('.site-nav'))
  .map((e) => [e.tagName, e.id || e.className, Math.round(e.getBoundingClientRect().right)])"""


@pytest.fixture(scope="module")
def unnamed_run(live_server):
    """A dataset of 3 classes × 4 desk objects and a LeNet-5 run on it with no label (1 epoch),
    made through the live server's API: (dataset id, owner token, the run as listed)."""
    reset_quotas()
    with httpx.Client(base_url=live_server, timeout=300) as api:
        dataset_id, token = desk_dataset(api, DATASET, 4, seed=9)
        run_id = train_on(api, dataset_id, epochs=1, batch_size=4)
        listed = api.get(f"/api/runs/{run_id}").json()
        assert listed["label"] == "" and listed["checkpoint"]
    reset_quotas()
    yield dataset_id, token, listed
    reset_quotas()


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_run_without_a_label_is_named_not_numbered(make_page, unnamed_run, lang):
    dataset_id, token, run = unnamed_run
    pages = [("laptop", "1366", ""), ("projector", "1920", "&present=1"), ("phone", "360", "")]
    for viewport, name, present in pages:
        page = make_page(viewport)
        page.goto(f"/teach?lang={lang}")
        tokens = json.dumps({dataset_id: token})
        page.evaluate(f"localStorage.setItem('cnnviz.datasetTokens', {json.dumps(tokens)})")
        page.goto(f"/teach?lang={lang}&dataset={dataset_id}{present}")
        expect(page.locator("#live-card")).to_have_attribute("data-runs", "1")
        option = page.locator("#live-run option").first
        text = option.inner_text()
        # model title, dataset name, start time in the page's language; the id is not the name
        shape = STARTED[lang].format(version=run["config"]["data"]["dataset_version"])
        expect(option).to_have_text(re.compile(f"^{shape}$"))
        assert run["id"] not in text
        started = datetime.fromtimestamp(run["created_at"])  # the browser's clock zone is ours
        assert str(started.year) in text and f":{started.minute:02d}" in text, text
        if lang == "ko":
            assert "오전" in text or "오후" in text, text
        else:
            assert "AM" in text or "PM" in text, text
        # the id, as the tooltip and the secondary line
        assert option.get_attribute("title") == run["id"]
        assert page.locator("#live-run").get_attribute("title") == run["id"]
        expect(page.locator("#live-run-id")).to_have_text(RUN_ID_LINE[lang].format(id=run["id"]))
        assert page.locator("#live-run").input_value() == run["id"]
        page.locator("#live-card").scroll_into_view_if_needed()
        width = page.viewport_size["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(
            WIDER, width
        )
        save_screenshot(page, f"teach-run-name-{lang}-{name}", full_page=False)
