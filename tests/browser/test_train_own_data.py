"""/train on a student's own dataset, in both languages: the picker lists this browser's
dataset (its id held in localStorage, as /teach leaves it) with its version next to the bundled
ones, a transfer run from the bundled TinyVGG starts from the form, and a confusion-matrix cell
opens exactly the held-out pictures the run's network counted there, each with its prediction
and a link that opens its explanation on /features."""

import io
import json
import math

import httpx
import pytest
from conftest import check_guard, open_page, own_datasets, save_screenshot
from PIL import Image

from app.i18n import catalogue
from app.runs.manager import RunLimits
from cnncore.class_names import localised_names
from cnncore.datasets.desk_objects import generate_desk_objects

TIMEOUT_MS = 300_000  # a run starts in about a minute on the busy 2-core machine
CLASSES = ("mug", "book", "ball")


@pytest.fixture(scope="module", autouse=True)
def datasets(tmp_path_factory):
    with own_datasets(tmp_path_factory.mktemp("own-data")) as made:
        yield made


@pytest.fixture(scope="module")
def manager(tmp_path_factory, runs_in):
    with runs_in(tmp_path_factory.mktemp("own-data-runs"), RunLimits(max_concurrent=2)) as running:
        yield running


@pytest.fixture(scope="module")
def desk(live_server, datasets):
    """A dataset of 3 × 8 generated desk objects, made through the API; (id, token)."""
    made = httpx.post(f"{live_server}/api/datasets",
                      json={"name": "desk", "classes": list(CLASSES)}).json()  # fmt: skip
    headers = {"X-Dataset-Token": made["owner_token"]}
    pictures = generate_desk_objects(8, side=64, seed=2)
    for class_id, name in enumerate(CLASSES):
        files = []
        for i, (kind, pixels) in enumerate(pictures):
            if kind == name:
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, "PNG")
                files.append(("files", (f"{name}{i}.png", buffer.getvalue(), "image/png")))
        url = f"{live_server}/api/datasets/{made['id']}/images"
        added = httpx.post(url, files=files, data={"class_id": str(class_id)}, headers=headers,
                           timeout=60)  # fmt: skip
        assert added.status_code == 201, added.text
    return made["id"], made["owner_token"]


def own_page(browser, live_server, desk, viewport="desktop"):
    page = open_page(browser, live_server, viewport)
    dataset_id, token = desk
    tokens = json.dumps({dataset_id: token})  # as /teach leaves them (dataset_api.js)
    page.add_init_script(f"localStorage.setItem('cnnviz.datasetTokens', JSON.stringify({tokens}))")
    return page


@pytest.fixture(scope="module")
def finished(browser, live_server, manager, desk):
    """A transfer run from the bundled TinyVGG on the dataset, started from the form."""
    page = own_page(browser, live_server, desk)
    try:
        page.goto("/train?lang=en&preset=custom&model=tinyvgg&epochs=3&batch=8&lr=0.003&flip=1")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#c-data", f"user:{desk[0]}")
        page.select_option("#c-from", "bundled:tinyvgg")
        page.wait_for_url("**from=bundled%3Atinyvgg**")
        page.click("#start")
        page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
        page.wait_for_selector("#heldout:not([hidden])")
        check_guard(page)
        run_id = page.evaluate("new URLSearchParams(location.search).get('run')")
        return run_id
    finally:
        page.context.close()


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_picker_and_confusion_cells_open_the_held_out_pictures(browser, live_server, desk, lang,
                                                              finished, manager):  # fmt: skip
    messages = catalogue(lang, "train")
    names = localised_names(CLASSES)[lang]  # desk objects: cnncore names them in Korean too
    dataset_id, _ = desk
    run = manager.store.get_run(finished)
    data = run.config["data"]
    assert data["name"] == "user" and data["dataset"] == dataset_id
    assert run.config["init_from"]["weights"] == "bundled"
    page = own_page(browser, live_server, desk)
    try:
        page.goto(f"/train?lang={lang}&preset=custom&data=user:{dataset_id}&run={finished}")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#heldout:not([hidden])", timeout=TIMEOUT_MS)
        # the picker: bundled datasets, then this browser's own with its version
        labels = page.locator("#c-data optgroup").evaluate_all("n => n.map(g => g.label)")
        assert labels == [messages["train.data.bundled"], messages["train.data.mine"]]
        own = page.locator(f'#c-data option[value="user:{dataset_id}"]')
        expected = messages["train.data.own"].format(name="desk", version=data["dataset_version"],
                                                     images=24)  # fmt: skip
        assert own.inner_text() == expected
        assert page.locator("#c-data").input_value() == f"user:{dataset_id}"
        assert page.locator('#c-from option[value="bundled:tinyvgg"]').count() == 1
        # the split table: what the run learnt from and held out, per class
        held = httpx.get(f"{live_server}/api/runs/{finished}/heldout").json()
        rows = page.locator("#heldout-table tbody tr")
        assert rows.count() == 3
        for c in range(3):
            cells = rows.nth(c).locator("td").all_inner_texts()
            assert cells[:2] == [str(held["train_counts"][c]), str(held["val_counts"][c])]
        # a non-empty cell of the matrix opens its pictures
        matrix = held["confusion"]
        true, predicted = next((r, c) for r in range(3) for c in range(3) if matrix[r][c])
        page.click(f"#confusion .cell[data-row='{true}'][data-col='{predicted}']")
        page.wait_for_url(f"**cell={true}%3A{predicted}**")
        page.wait_for_selector(f"#heldout-cell[data-cell='{true}:{predicted}']")
        cell = httpx.get(f"{live_server}/api/runs/{finished}/heldout",
                         params={"true": true, "predicted": predicted}).json()  # fmt: skip
        shown = page.locator("#heldout-pictures li[data-index]")
        indices = shown.evaluate_all("n => n.map(li => Number(li.dataset.index))")
        assert indices == [p["index"] for p in cell["pictures"]]
        assert len(indices) == held["confusion"][true][predicted]
        heading = messages["train.heldout.cell"].format(
            truth=names[true], guess=names[predicted], count=len(indices)
        )
        assert page.inner_text("#heldout-cell-heading") == heading
        first = cell["pictures"][0]  # its caption: the classes and the confidence, rounded
        caption = messages["train.wrong.caption"].format(
            truth=names[true], guess=names[predicted],
            confidence=f"{math.floor(100 * first['confidence'] + 0.5)}%",
        )  # fmt: skip
        assert shown.first.locator(":scope > span").inner_text() == caption
        link = shown.first.locator("a.heldout-explain")
        assert link.inner_text() == messages["train.heldout.explain"]
        href = link.get_attribute("href")
        assert f"run={finished}" in href and "weights=run" in href
        assert f"heldout={indices[0]}" in href
        # its live prediction is on /teach, beside the dataset: a link there (there was none)
        assert page.inner_text("#teach-link") == messages["train.teach_link"]
        teach = page.get_attribute("#teach-link", "href")
        assert f"dataset={dataset_id}" in teach and f"lang={lang}" in teach
        save_screenshot(page, f"train-own-data-{lang}")
        if lang == "en":  # the explanation opens with that picture and the run's weights
            page.goto(href)
            page.wait_for_selector("#upload-name:has-text('held-out picture')", timeout=TIMEOUT_MS)
        check_guard(page)
    finally:
        page.context.close()
