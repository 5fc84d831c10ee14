"""/teach's live prediction in both languages: a run trained on a dataset of the page's own
(generated desk objects, uploaded through the API) predicts from Chromium's fake camera and
from synthetic drawings on the pad; the bars update frame after frame, their values are the
server's softmax (summing to 100 %), and the page shows what the API answers for the same
picture. Screenshots at 1366×768, presenter 1920×1080 and a 360 px phone."""

import io
import json

import httpx
import pytest
from conftest import guarded_pages, save_screenshot
from PIL import Image
from playwright.sync_api import expect

from app.quotas import reset_quotas
from cnncore.datasets.desk_objects import DESK_CLASSES, generate_desk_objects


@pytest.fixture
def pages(camera_browser, live_server):
    reset_quotas()  # every browser test comes from 127.0.0.1: start from a fresh allowance
    with guarded_pages(camera_browser, live_server) as make:
        yield make
    reset_quotas()


def png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def desk_dataset(api: httpx.Client, name: str, count: int, seed: int) -> tuple[str, str]:
    """A dataset `name` of the 3 desk classes with `count` generated pictures of each, made
    through the API: (dataset id, owner token)."""
    made = api.post("/api/datasets", json={"name": name, "classes": list(DESK_CLASSES)})
    assert made.status_code == 201, made.text
    dataset_id, token = made.json()["id"], made.json()["owner_token"]
    pictures = generate_desk_objects(count, side=48, seed=seed)
    for class_id, kind_name in enumerate(DESK_CLASSES):
        files = [("files", (f"{kind_name}{i}.png", png(p), "image/png"))
                 for i, (kind, p) in enumerate(pictures) if kind == kind_name]  # fmt: skip
        added = api.post(f"/api/datasets/{dataset_id}/images", files=files,
                         data={"class_id": str(class_id)},
                         headers={"X-Dataset-Token": token})  # fmt: skip
        assert added.status_code == 201, added.text
    return dataset_id, token


def train_on(api: httpx.Client, dataset_id: str, **config) -> str:
    """A LeNet-5 run on the dataset (32×32, a quarter held out), waited for until it completed:
    its id. `config`: the run's other fields (epochs, batch_size, label)."""
    body = {"model": "lenet5", **config,
            "data": {"name": "user", "dataset": dataset_id, "image_size": 32,
                     "val_fraction": 0.25}}  # fmt: skip
    run = api.post("/api/runs", json=body)
    assert run.status_code == 201, run.text
    events = api.get(run.json()["events_url"])  # answers once the run has ended
    assert '"reason":"completed"' in events.text.replace(" ", "")
    return run.json()["id"]


@pytest.fixture(scope="module")
def trained(live_server):
    """A dataset of 3 classes × 8 desk objects and a LeNet-5 run trained on it (2 epochs), made
    through the live server's API: (dataset id, owner token, run id, class names)."""
    with httpx.Client(base_url=live_server, timeout=300) as api:
        dataset_id, token = desk_dataset(api, "desk", 8, seed=5)
        run_id = train_on(api, dataset_id, label="desk live", epochs=2, batch_size=8)
        reset_quotas()
        return dataset_id, token, run_id, list(DESK_CLASSES)


def open_teach(pages, trained, lang: str, viewport: str = "desktop"):
    dataset_id, token, run_id, _ = trained
    page = pages(viewport)
    page.goto(f"/teach?lang={lang}")
    tokens = json.dumps({dataset_id: token})
    page.evaluate(f"localStorage.setItem('cnnviz.datasetTokens', {json.dumps(tokens)})")
    page.goto(f"/teach?lang={lang}&dataset={dataset_id}")
    expect(page.locator("#live-card")).to_be_visible()
    expect(page.locator("#live-card")).to_have_attribute("data-runs", "1")
    assert page.locator("#live-run").input_value() == run_id
    return page


def frames(page) -> int:
    return int(page.locator("#live-bars").get_attribute("data-frames") or 0)


def wait_frames(page, more_than: int) -> None:
    page.wait_for_function(
        f"() => Number(document.querySelector('#live-bars').dataset.frames || 0) > {more_than}"
    )


# one read of the bars (they are redrawn many times a second): labels, values, shown text
READ_BARS = """() => [...document.querySelectorAll('#live-bars .live-bar')].map((row) => [
  row.querySelector('.live-bar-label').textContent, Number(row.dataset.prob),
  row.querySelector('.live-bar-value').textContent])"""


def check_bars(page, classes: list[str]) -> list[float]:
    """The bars name every class in the run's order; their values sum to 1 (softmax) and the
    shown percentages are those values rounded to 0.1 (so within 0.05 × classes of 100)."""
    rows = page.evaluate(READ_BARS)
    assert [label for label, _, _ in rows] == classes
    values = [value for _, value, _ in rows]
    assert all(0 <= v <= 1 for v in values)
    assert sum(values) == pytest.approx(1.0, abs=1e-5)
    shown = [float(text.rstrip("%").replace(",", "")) for _, _, text in rows]
    assert all(abs(s - v * 100) <= 0.05 + 1e-9 for s, v in zip(shown, values, strict=True))
    assert abs(sum(shown) - 100) <= 0.05 * len(classes) + 1e-9
    return values


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_live_prediction_from_the_fake_camera_and_the_pad(pages, trained, lang):
    dataset_id, _, run_id, classes = trained
    page = open_teach(pages, trained, lang)
    page.set_viewport_size({"width": 1366, "height": 768})
    sent = []
    page.on("request", lambda r: "/api/predict" in r.url and sent.append(r))

    # the fake camera: frames stream in, each answer redraws the bars
    page.click("#live-toggle")
    expect(page.locator("#live-toggle")).to_have_attribute("aria-pressed", "true")
    wait_frames(page, 0)
    first = frames(page)
    check_bars(page, classes)
    wait_frames(page, first + 5)
    check_bars(page, classes)
    assert all(f"run={run_id}" in r.url and r.headers["content-type"] == "image/png"
               for r in sent)  # fmt: skip
    expect(page.locator("#live-rate")).to_contain_text("ms")
    save_screenshot(page, f"teach-live-{lang}-1366")

    # the bars show what the API answers for the very picture the page sent
    request = sent[-1]
    answer = request.response().json()
    again = httpx.post(f"{page.url.split('/teach')[0]}/api/predict",
                       params={"model": "lenet5", "run": run_id},
                       content=request.post_data_buffer,
                       headers={"Content-Type": "image/png"})  # fmt: skip
    assert again.json()["probs"] == pytest.approx(answer["probs"], abs=1e-6)
    assert answer["labels"] == classes

    # the drawing pad: nothing is sent while the drawing is unchanged; each stroke is sent
    page.click("#live-toggle")  # stop
    expect(page.locator("#live-toggle")).to_have_attribute("aria-pressed", "false")
    page.check("input[name=live-source][value=pad]")
    page.click("#live-toggle")
    wait_frames(page, frames(page))  # the blank pad, once
    page.wait_for_timeout(300)  # frames go by: an unchanged drawing is not sent again
    settled = frames(page)
    page.wait_for_timeout(300)
    assert frames(page) == settled
    expect(page.locator("#live-camera")).to_be_hidden()
    page.locator("#live-pad").scroll_into_view_if_needed()
    box = page.locator("#live-pad").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 25):
        page.mouse.move(box["x"] + 40 + step * 4, box["y"] + 40 + step * 4)
        page.wait_for_timeout(20)
    page.mouse.up()
    wait_frames(page, settled)
    check_bars(page, classes)
    # what was sent during the stroke is the drawing: white on black
    last = Image.open(io.BytesIO(sent[-1].post_data_buffer)).convert("L")
    assert last.getextrema() == (0, 255)
    page.click("#live-toggle")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_live_prediction_at_presenter_and_phone_sizes(pages, trained, lang):
    _, _, _, classes = trained
    for viewport, name in (("projector", "1920"), ("phone", "360")):
        page = open_teach(pages, trained, lang, viewport)
        page.click("#live-toggle")
        wait_frames(page, 2)
        check_bars(page, classes)
        page.locator("#live-card").scroll_into_view_if_needed()
        save_screenshot(page, f"teach-live-{lang}-{name}")
        page.click("#live-toggle")
        if viewport == "phone":
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"the phone page scrolls sideways ({width} px)"
