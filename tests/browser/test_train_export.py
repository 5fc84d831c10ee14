"""The /train page's "Export model" menu on a run trained to its end by a real worker: shown for
the finished run, in Korean and English, and its links download the files the API makes from
the run's checkpoint (the PyTorch file compared byte for byte, the zip opened)."""

import io
import zipfile

import httpx
import pytest

from app.runs.manager import RunLimits
from tests.app.trained_runs import train_to_end

RUN = {"label": "to export", "model": "lenet5", "data": {"name": "digits", "limit": 300},
       "epochs": 1, "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, runs_in, live_server):
    folder = tmp_path_factory.mktemp("export-page")
    with runs_in(folder, RunLimits(max_concurrent=1)) as runs:
        run_id = train_to_end(
            lambda path, **kw: httpx.post(f"{live_server}{path}", timeout=60, **kw), runs, RUN
        )
        yield run_id


def test_export_menu_downloads_the_runs_files(make_page, finished_run, live_server, screenshot):
    run_id = finished_run
    page = make_page("desktop")
    page.goto(f"/train?lang=ko&run={run_id}")
    menu = page.locator("#export-model")
    menu.locator("summary").wait_for(state="visible", timeout=60_000)
    assert menu.locator("summary").text_content().strip() == "모델 내보내기"
    menu.locator("summary").click()
    links = menu.locator("a[data-format]")
    assert links.count() == 6
    assert links.nth(3).text_content() == "PyTorch 파일 (.py)"
    assert links.nth(3).get_attribute("href") == f"/api/runs/{run_id}/export?format=py"
    screenshot(page, "train-export-menu-ko", full_page=False)
    with page.expect_download(timeout=60_000) as started:
        links.nth(3).click()
    download = started.value
    assert download.suggested_filename == f"cnnviz_lenet5_{run_id}.py"
    served = httpx.get(f"{live_server}/api/runs/{run_id}/export?format=py", timeout=60)
    assert download.path().read_bytes() == served.content
    assert "class LeNet5(nn.Module):" in served.text
    with page.expect_download(timeout=120_000) as started:
        links.nth(0).click()  # everything, ONNX made on the way
    with zipfile.ZipFile(io.BytesIO(started.value.path().read_bytes())) as archive:
        assert sorted(name.rsplit(".", 1)[1] for name in archive.namelist()) == \
            ["json", "md", "onnx", "py", "safetensors"]  # fmt: skip


def test_export_menu_in_english_on_a_phone(make_page, finished_run, screenshot):
    page = make_page("phone")
    page.goto(f"/train?lang=en&run={finished_run}")
    summary = page.locator("#export-model summary")
    summary.wait_for(state="visible", timeout=60_000)
    assert summary.text_content().strip() == "Export model"
    summary.click()
    panel = page.locator("#export-model .export-panel")
    box = panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    assert page.locator("#export-model a[data-format='onnx']").text_content() == "ONNX (opset 18)"
    screenshot(page, "train-export-menu-en-phone", full_page=False)


def test_no_export_menu_without_a_run(page):
    page.goto("/train?lang=en")
    page.wait_for_selector("#runs-body", state="attached")
    assert page.locator("#export-model").is_hidden()


def test_export_menu_in_presenter_mode(make_page, finished_run, screenshot):
    page = make_page("projector")
    page.goto(f"/train?lang=ko&present=1&run={finished_run}")
    page.wait_for_function("document.documentElement.classList.contains('presenter')")
    summary = page.locator("#export-model summary")
    summary.wait_for(state="visible", timeout=60_000)
    summary.click()
    box = page.locator("#export-model .export-panel").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1920
    assert page.locator("#export-model a[data-format='zip']").is_visible()
    screenshot(page, "train-export-menu-ko-presenter", full_page=False)
