"""The training page in a real browser, on tiny runs: a run started from the form is followed
live to its end and what the page shows (confusion matrix, filters, gradient bars, figures)
equals the run's stored events; the URL reopens the same run; pause, resume and stop work from
the buttons; a two-run preset is compared; a refused transfer names its field; Korean on a
phone."""

import csv
import io
import json
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import check_guard, open_page
from playwright.sync_api import expect

from app.i18n import catalogue
from app.runs.manager import RunLimits

TIMEOUT_MS = 300_000  # a run starts in about a minute when the 2-core machine runs at load 20
TINY = "preset=custom&model=lenet5&data=digits&limit=300&epochs=2&batch=32&steps=5"
LONG = "preset=custom&model=mlp&data=digits&limit=300&epochs=50&batch=4&steps=0"


@pytest.fixture(scope="module")
def manager(tmp_path_factory, runs_in):
    with runs_in(tmp_path_factory.mktemp("train-page"), RunLimits(max_concurrent=3)) as running:
        yield running


def stored_events(manager, run_id: str) -> list[dict]:
    return [json.loads(e.data) for e in manager.store.events_after(run_id, 0, 100_000)]


def open_train(page, query: str):
    page.goto(f"/train?lang=en&{query}")
    page.wait_for_selector("body[data-ready=true]")


def run_in_url(page) -> str:
    return parse_qs(urlparse(page.url).query)["run"][0]


def start_and_finish(page, status: str = "completed") -> str:
    page.click("#start")
    page.wait_for_selector(f"#run[data-status={status}]", timeout=TIMEOUT_MS)
    return run_in_url(page)


@pytest.fixture(scope="module")
def finished(browser, live_server, manager):
    """One tiny LeNet-5 run started from the form; its id and the page's URL at the end."""
    page = open_page(browser, live_server)
    try:
        open_train(page, TINY)
        run_id = start_and_finish(page)
        check_guard(page)
        return run_id, page.url
    finally:
        page.context.close()


def check_run_on_screen(page, manager, run_id: str):
    events = stored_events(manager, run_id)
    epochs = [e for e in events if e["kind"] == "epoch"]
    steps = [e for e in events if e["kind"] == "step"]
    panel = page.locator("#run")
    assert panel.get_attribute("data-steps") == str(len(steps)) == "10"
    assert panel.get_attribute("data-epochs") == "2"
    assert panel.get_attribute("data-last-event") == str(len(events))
    # confusion matrix: every cell is the stored last epoch's count
    matrix = epochs[-1]["confusion"]
    cells = page.locator("#confusion .cell")
    assert cells.count() == len(matrix) ** 2
    shown = cells.evaluate_all("nodes => nodes.map(n => [n.dataset.row, n.dataset.col, "
                               "n.dataset.value].map(Number))")  # fmt: skip
    assert all(matrix[r][c] == value for r, c, value in shown)
    # filters: one per epoch in the history, the newest large
    assert page.locator("#filter-history img").count() == 2
    newest = page.get_attribute("#filters img", "src")
    assert newest == "data:image/png;base64," + epochs[-1]["filters"]["png"]
    # gradient bars: the newest norms (sampled at each epoch's last step, step 10)
    norms = [e for e in steps if e["grad_norms"]][-1]
    assert norms["step"] == 10 and norms["grad_norms"] == epochs[-1]["grad_norms"]
    bars = page.locator("#grad-chart rect.chart-bar.series-0")
    assert bars.count() == len(norms["grad_norms"])
    values = [float(v) for v in bars.evaluate_all("nodes => nodes.map(n => n.dataset.value)")]
    assert values == pytest.approx(list(norms["grad_norms"].values()))
    # the loss line has one point per step (10 steps: no averaging needed), validation 2
    assert page.get_attribute("#loss-chart", "data-series-points") == f"{len(steps)},2"
    accuracy = round(100 * epochs[-1]["val_accuracy"], 1)
    assert f"validation accuracy {accuracy:g}% after epoch 2" in page.inner_text("#run-facts")


def test_a_run_from_the_form_shows_exactly_its_events(page, manager, finished):
    run_id, url = finished
    page.goto(url)
    page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    check_run_on_screen(page, manager, run_id)
    row = page.locator(f'#runs-body tr[data-run="{run_id}"]')
    assert row.get_attribute("data-status") == "completed"
    assert row.get_attribute("aria-current") == "true"
    for button in ("#pause", "#resume", "#stop"):
        assert page.locator(button).is_disabled()
    href = page.get_attribute("#export-csv", "href")
    assert href == f"/api/runs/{run_id}/metrics.csv"
    rows = list(csv.DictReader(io.StringIO(page.request.get(href).text())))
    assert [r["kind"] for r in rows].count("step") == 10
    metrics = page.request.get(page.get_attribute("#export-json", "href")).json()
    assert len(metrics["epochs"]) == 2


def test_a_run_shorter_than_the_norm_interval_shows_gradient_bars(page, manager):
    open_train(page, "preset=custom&model=lenet5&data=digits&limit=300&epochs=1&batch=32&steps=3")
    run_id = start_and_finish(page)
    events = stored_events(manager, run_id)
    start = next(e for e in events if e["kind"] == "start")
    assert start["config"]["norms_every"] > 3  # the interval alone would sample nothing
    sampled = [e for e in events if e["kind"] == "step" and e["grad_norms"]]
    assert [e["step"] for e in sampled] == [1, 3]  # the first step and the epoch's last
    layers = start["model"]["layers"]
    bars = page.locator("#grad-chart rect.chart-bar.series-0")
    assert bars.count() == len(layers) == 5
    values = [float(v) for v in bars.evaluate_all("nodes => nodes.map(n => n.dataset.value)")]
    assert values == pytest.approx([sampled[-1]["grad_norms"][name] for name in layers])
    assert all(v > 0 for v in values)
    check_guard(page)


def test_the_url_reopens_the_run_and_the_form(page, finished):
    _, url = finished
    page.goto(url)
    page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    form = page.locator("#train-controls")
    assert form.locator('[name="model"]').input_value() == "lenet5"
    assert form.locator('[name="data"]').input_value() == "digits"
    assert form.locator('[name="epochs"]').input_value() == "2"
    assert form.locator('[name="steps"]').input_value() == "5"
    form.locator('[name="epochs"]').fill("4")
    form.locator('[name="epochs"]').press("Enter")
    form.locator('[name="epochs"]').blur()
    page.wait_for_url("**epochs=4**")
    assert parse_qs(urlparse(page.url).query)["run"] == [run_in_url(page)]


def test_pause_resume_and_stop_from_the_buttons(page, manager):
    open_train(page, LONG)
    page.click("#start")
    page.wait_for_selector("#run[data-status=running]", timeout=TIMEOUT_MS)
    page.wait_for_function("() => Number(document.getElementById('run').dataset.steps) > 0",
                           timeout=TIMEOUT_MS)  # fmt: skip
    page.click("#pause")
    page.wait_for_selector("#run[data-status=paused]", timeout=TIMEOUT_MS)
    assert page.locator("#resume").is_enabled() and page.locator("#pause").is_disabled()
    page.click("#resume")
    page.wait_for_selector("#run[data-status=running]", timeout=TIMEOUT_MS)
    page.click("#stop")
    page.wait_for_selector("#run[data-status=stopped]", timeout=TIMEOUT_MS)
    run_id = run_in_url(page)
    kinds = [e["kind"] for e in stored_events(manager, run_id)]
    assert "paused" in kinds and "resumed" in kinds and kinds[-1] == "end"
    assert manager.get(run_id).status == "stopped"
    assert page.locator("#stop").is_disabled()


def test_a_preset_starts_two_runs_and_compares_them(page, manager):
    open_train(page, TINY)
    form = page.locator("#train-controls")
    form.locator('[name="preset"]').select_option("mlp_vs_cnn")
    assert "MLP · CNN (LeNet-5)" in page.inner_text("#preset-note")
    assert form.locator('[name="data"]').input_value() == "mnist5k"  # the preset's values
    form.locator('[name="data"]').select_option("digits")  # then made tiny
    for name, value in (("steps", "3"), ("epochs", "2"), ("limit", "300")):
        form.locator(f'[name="{name}"]').fill(value)
        form.locator(f'[name="{name}"]').press("Enter")
    page.click("#start")
    page.wait_for_url("**compare=*%2C*", timeout=TIMEOUT_MS)
    ids = parse_qs(urlparse(page.url).query)["compare"][0].split(",")
    assert len(ids) == 2 and run_in_url(page) == ids[1]
    assert [manager.get(i).config["model"] for i in ids] == ["mlp", "lenet5"]
    assert [manager.get(i).config["label"] for i in ids] == ["MLP", "CNN (LeNet-5)"]
    page.wait_for_selector("#compare[data-runs='2']", timeout=TIMEOUT_MS)
    for run_id in ids:
        page.wait_for_selector(f'#runs-body tr[data-run="{run_id}"][data-status=completed]',
                               timeout=TIMEOUT_MS)  # fmt: skip
    # the legend ends with each run's final validation accuracy, as stored
    expected = [
        f"{manager.get(i).config['label']}: "
        f"{round(100 * manager.get(i).summary['val_accuracy'], 1):g}%"
        for i in ids
    ]
    page.wait_for_function(
        "expected => JSON.stringify([...document.querySelectorAll('#compare-legend li')]"
        ".map(li => li.textContent)) === JSON.stringify(expected)",
        arg=expected, timeout=TIMEOUT_MS,
    )  # fmt: skip
    assert page.get_attribute("#compare-accuracy", "data-series-points") == "2,2"
    # unticking a run takes it out of the comparison and the URL
    page.locator(f'#runs-body tr[data-run="{ids[0]}"] input[type=checkbox]').uncheck()
    page.wait_for_selector("#compare[data-runs='1']")
    # the URL is written throttled (static/js/state.js): wait for the trailing write
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("compare") == [ids[1]])
    assert parse_qs(urlparse(page.url).query)["compare"] == [ids[1]]


def test_a_refused_transfer_names_the_field(page, finished):
    run_id, _ = finished
    open_train(page, TINY)
    form = page.locator("#train-controls")
    form.locator('[name="from"]').select_option(run_id)
    form.locator('[name="freeze"]').fill("nope")
    form.locator('[name="freeze"]').press("Enter")
    page.click("#start")
    slot = page.locator('[data-error-for="freeze"]')
    slot.wait_for(state="visible")
    assert "There is no layer of this name in this model; its layers are: " in slot.inner_text()
    assert "features.0" in slot.inner_text()  # the model's own names, from the error's ctx
    assert form.locator('[name="freeze"]').get_attribute("aria-invalid") == "true"
    page.guard.expect_errors("status of 422", 1)


def test_korean_on_a_phone(make_page, finished, screenshot):
    run_id, _ = finished
    phone = make_page("phone", locale="ko-KR")
    phone.goto(f"/train?run={run_id}")
    phone.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    assert phone.get_attribute("html", "lang") == "ko"
    assert phone.inner_text("#run-status") == "완료"
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360 + 1  # nothing wider than the phone: tables and charts scroll or shrink
    screenshot(phone, "train-phone-ko")


def test_the_transfer_preset_fine_tunes_from_its_pre_training(page, manager, screenshot):
    """Pre-training (0–4) and from-scratch (5–9, few images) start together; the fine-tuning
    starts from the pre-training's checkpoint once it has finished, its first two
    convolutions frozen."""
    open_train(page, TINY)
    form = page.locator("#train-controls")
    form.locator('[name="preset"]').select_option("transfer")
    assert form.locator('[name="classes"]').input_value() == "5,6,7,8,9"
    assert form.locator('[name="freeze"]').input_value() == "features.0,features.3"
    form.locator('[name="data"]').select_option("digits")  # made tiny: digits, short epochs
    for name, value in (("steps", "2"), ("epochs", "2")):
        form.locator(f'[name="{name}"]').fill(value)
        form.locator(f'[name="{name}"]').press("Enter")
    page.click("#start")
    page.wait_for_url("**compare=*%2C*%2C*", timeout=TIMEOUT_MS)  # the third run joined
    pretrain, scratch, tuned = parse_qs(urlparse(page.url).query)["compare"][0].split(",")
    assert run_in_url(page) == tuned
    page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    configs = {run_id: manager.get(run_id).config for run_id in (pretrain, scratch, tuned)}
    assert configs[pretrain]["data"]["classes"] == [0, 1, 2, 3, 4]
    assert configs[scratch]["data"] == configs[tuned]["data"]  # the same few images
    assert configs[tuned]["data"]["classes"] == [5, 6, 7, 8, 9]
    assert configs[scratch]["init_from"] is None
    assert configs[tuned]["init_from"] == {"run_id": pretrain,
                                           "freeze": ["features.0", "features.3"],
                                           "replace_head": True}  # fmt: skip
    start = next(e for e in stored_events(manager, tuned) if e["kind"] == "start")
    assert start["model"]["trainable_params"] < start["model"]["params"]
    page.wait_for_selector("#compare[data-runs='3']", timeout=TIMEOUT_MS)
    screenshot(page, "train-transfer")


def test_the_gradient_check_shows_the_apis_relative_errors(page, screenshot):
    open_train(page, TINY)
    panel = page.locator("#gradcheck")
    panel.locator("#gc-model").select_option("tiny_mlp")
    panel.locator("#gc-samples").fill("50")
    panel.locator("#gc-seed").fill("3")
    panel.locator("#gradcheck-run").click()
    page.wait_for_selector("#gradcheck-body tr")
    expected = page.request.post(
        "/api/gradcheck",
        data={"model": "tiny_mlp", "activation": "tanh", "epsilon": 1e-6, "samples": 50, "seed": 3},
    ).json()
    rows = page.locator("#gradcheck-body tr")
    assert rows.count() == len(expected["tensors"]) == 4
    for index, tensor in enumerate(expected["tensors"]):
        row = rows.nth(index)
        assert row.locator("th").inner_text() == tensor["name"]
        cell = row.locator(".relative-error")
        assert float(cell.get_attribute("data-value")) == tensor["relative_error"]
        assert cell.inner_text() == f"{tensor['relative_error']:.2e}".replace("e-0", "e-")
        assert row.get_attribute("data-passed") == "true" and row.locator(".verdict").inner_text()
    # a too-large ε is refused next to its field
    panel.locator("#gc-epsilon").fill("0.5")
    panel.locator("#gradcheck-run").click()
    page.wait_for_selector('#gradcheck-form [data-error-for="epsilon"]:not([hidden])')
    page.guard.expect_errors("status of 422", 1)
    panel.locator("#gc-epsilon").fill("0.01")
    panel.locator("#gradcheck-run").click()
    page.wait_for_selector('#gradcheck-body tr[data-passed="false"]')
    panel.scroll_into_view_if_needed()
    screenshot(page, "train-gradcheck", full_page=False)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_diverged_run_shows_its_status_and_why(make_page, manager, screenshot, lang):
    """lr 10: the run ends `diverged` (not `completed`), and the page explains it in the
    reader's language with the sentences stored with the run's own diagnosis."""
    msgs = {**catalogue(lang, "common"), **catalogue(lang, "train")}
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/train?lang={lang}&preset=custom&model=lenet5&data=digits&limit=300&lr=10"
              "&epochs=2&batch=32&steps=20&pace=0.1")  # fmt: skip
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator('[name="pace"]').input_value() == "0.1"  # slow mode, from the URL
    run_id = start_and_finish(page, "diverged")
    assert manager.get(run_id).config["step_delay_s"] == 0.1
    assert page.inner_text("#run-status") == msgs["train.status.diverged"]
    # an unnamed run is called by what it is and its place among the runs, not its hex id
    listed = sorted(manager.store.list_runs(100), key=lambda r: (r.created_at, r.id))
    number = [r.id for r in listed].index(run_id) + 1
    model, data = msgs["train.model.lenet5"], msgs["train.data.digits"]
    name = msgs["train.run_name"].format(model=model, data=data, lr=10, epochs=2, number=number)
    # the list refreshes every 2 s: the title and the row follow it
    page.wait_for_function("name => document.querySelector('#run-title').textContent === name",
                           arg=name)  # fmt: skip
    page.wait_for_function(
        "([id, name]) => document.querySelector(`#runs-body tr[data-run='${id}'] .link-button`)"
        "?.textContent === name", arg=[run_id, name])  # fmt: skip
    diverged = next(e for e in stored_events(manager, run_id) if e["kind"] == "diverged")
    assert diverged["diagnosis"]["findings"][0]["cause"] == "lr_too_high"
    box = page.locator("#run-diagnosis")
    assert box.is_visible()
    assert box.locator("h3").inner_text() == msgs["train.diagnosis.heading"]
    assert box.locator("p").all_inner_texts() == diverged["explanation"][lang]
    lr_line = msgs["train.diagnosis.lr_too_high"].split("{lr}")[0]
    assert box.locator("p").nth(1).inner_text().startswith(lr_line + "10")
    page.wait_for_selector(f'#runs-body tr[data-run="{run_id}"][data-status=diverged]')
    screenshot(page, f"train-diverged-{lang}-1366")
    # reopening the run from its URL replays the same explanation
    page.goto(page.url)
    page.wait_for_selector("#run[data-status=diverged]", timeout=TIMEOUT_MS)
    assert page.locator("#run-diagnosis p").all_inner_texts() == diverged["explanation"][lang]


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_loss_chart_reads_out_zooms_and_goes_logarithmic(make_page, manager, finished, lang):
    """uPlot charts: the hover read-out shows each series' value at the step under the cursor
    (moved here with the keyboard), dragging zooms into a range of steps and a double-click
    zooms out, and the log scale is a switch kept in the URL."""
    run_id, _ = finished
    steps = {e["step"]: e for e in stored_events(manager, run_id) if e["kind"] == "step"}
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/train?lang={lang}&run={run_id}")
    page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    chart = page.locator("#loss-chart")
    chart.scroll_into_view_if_needed()
    assert chart.get_attribute("data-series-points") == "10,2"
    assert chart.get_attribute("data-x-range") == "0,10"
    # hover read-out: → moves the cursor sample by sample; the legend shows that step's loss
    chart.focus()
    for _ in range(4):
        chart.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#loss-chart').dataset.cursor === '3'")
    shown = chart.locator(".u-legend .u-series").nth(1).locator(".u-value").inner_text()
    assert float(shown) == pytest.approx(steps[3]["loss"], abs=5e-5)
    assert chart.locator(".u-legend .u-series").nth(0).locator(".u-value").inner_text() == "3"
    # zoom: drag across the middle of the plot, then double-click to see every step again
    box = chart.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.3 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], y, steps=5)
    page.mouse.move(box["x"] + 0.7 * box["width"], y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#loss-chart').dataset.zoomed === 'true'")
    low, high = map(float, chart.get_attribute("data-x-range").split(","))
    assert low == pytest.approx(3, abs=0.3) and high == pytest.approx(7, abs=0.3)
    assert page.locator("#reset-zoom").is_enabled()
    chart.locator(".u-over").dblclick()
    page.wait_for_function("() => document.querySelector('#loss-chart').dataset.xRange === '0,10'")
    assert page.locator("#reset-zoom").is_disabled()
    # log scale: a switch in the URL that survives a reload
    assert chart.get_attribute("data-log") == "false"
    page.locator("#log-scale").check()
    page.wait_for_function("() => document.querySelector('#loss-chart').dataset.log === 'true'")
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("log") == ["1"])
    page.reload()
    page.wait_for_selector("#run[data-status=completed]", timeout=TIMEOUT_MS)
    assert page.locator("#log-scale").is_checked()
    assert page.get_attribute("#loss-chart", "data-log") == "true"
    assert page.get_attribute("#loss-chart", "data-series-points") == "10,2"


def test_a_korean_page_names_the_shapes_classes_in_korean(make_page, manager):
    page = make_page("desktop")
    page.goto("/train?lang=ko&preset=custom&model=tinyvgg&data=shapes&limit=120&epochs=1"
              "&batch=32&steps=2")  # fmt: skip
    page.wait_for_selector("body[data-ready=true]")
    run_id = start_and_finish(page)
    start = next(e for e in stored_events(manager, run_id) if e["kind"] == "start")
    korean = start["dataset"]["names"]["ko"]
    assert korean[0] == "원" and len(korean) == len(start["dataset"]["class_names"])
    note = page.inner_text("#confusion-note")
    assert ", ".join(f"{i} = {name}" for i, name in enumerate(korean)) in note


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_transfer_source_takes_the_architecture_controls(make_page, lang):
    """Start from TinyVGG's bundled weights: the run is a TinyVGG whatever the model select
    says, so the architecture controls are disabled and a note names the source (the form kept
    showing LeNet-5, enabled, and the run trained TinyVGG); back to none, they are choices again."""
    text = catalogue(lang, "train")
    page = make_page("laptop")
    page.goto(f"/train?lang={lang}&preset=custom&model=lenet5&from=bundled:tinyvgg")
    page.wait_for_selector("body[data-ready=true]")
    source = page.locator("#c-from option:checked").inner_text()
    assert "TinyVGG" in source
    note = page.locator("#model-from-note")
    expect(note).to_have_text(text["train.from.keeps"].replace("{source}", source))
    for name in ("model", "activation", "bn", "dropout"):
        expect(page.locator(f"#c-{name}")).to_be_disabled()
    expect(page.locator("#c-model")).to_have_value("tinyvgg")  # what will train
    page.select_option("#c-from", "")
    expect(note).to_be_hidden()
    for name in ("model", "activation", "bn", "dropout"):
        expect(page.locator(f"#c-{name}")).to_be_enabled()
