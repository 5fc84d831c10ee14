"""/features with a drawing as the picture, in both languages: opening the pad switches to the
trained LeNet-5, and a synthetic stroke (mouse moves) sends the drawing while it is drawn — one
request in flight at a time, never piled up, and one request per update while the pen is down
(POST /api/features/live, its pictures inline) — with the layer maps and the prediction changing
before the stroke ends, each update showing what its own answer says. Screenshots at
1366×768, presenter 1920×1080 and a 360 px phone."""

import re

import pytest
from conftest import save_screenshot
from playwright.sync_api import expect

from app.quotas import reset_quotas


@pytest.fixture(autouse=True)
def fresh_quotas():
    reset_quotas()  # every browser test comes from 127.0.0.1: start from a fresh allowance
    yield
    reset_quotas()


def updates(page) -> int:
    return int(page.locator("#draw-panel").get_attribute("data-updates") or 0)


def wait_updates(page, more_than: int) -> None:
    page.wait_for_function(
        f"() => Number(document.querySelector('#draw-panel').dataset.updates || 0) > {more_than}",
        timeout=60_000,
    )


class Watch:
    """The /api/features requests of a page: how many were in flight at most, the answers, and
    every request's kind in order (`log`: "post", "live" or "png")."""

    def __init__(self, page):
        self.open = 0
        self.most = 0
        self.answers = []
        self.log = []
        page.on("request", self.started)
        page.on("requestfinished", self.ended)
        page.on("requestfailed", self.ended)

    @staticmethod
    def posts(request) -> bool:
        return request.method == "POST" and re.search(r"/api/features(/live\?.*)?$", request.url)

    def started(self, request):
        if self.posts(request):
            self.log.append("live" if "/live?" in request.url else "post")
            self.open += 1
            self.most = max(self.most, self.open)
        elif re.search(r"/api/features/[^/]+/.+\.png", request.url):
            self.log.append("png")

    def ended(self, request):
        if self.posts(request):
            self.open -= 1
            response = request.response()
            if response is not None and response.ok:
                self.answers.append(response.json())


def shown_predictions(page) -> list[tuple[str, str]]:
    rows = page.locator("#prediction-list li").all()
    label, value = ".prediction-label", ".prediction-value"
    return [(row.locator(label).inner_text(), row.locator(value).inner_text()) for row in rows]


def same_predictions(shown, answer) -> bool:
    """The shown labels in the answer's order, each percentage its probability to the digits
    shown (the page writes small ones with more decimals)."""
    predictions = answer["predictions"]
    if [label for label, _ in shown] != [p["label"] for p in predictions]:
        return False
    for (_, text), p in zip(shown, predictions, strict=True):
        digits = len(text.rstrip("%").partition(".")[2])
        if abs(float(text.rstrip("%")) - p["prob"] * 100) > 0.5 * 10**-digits + 1e-9:
            return False
    return True


def stroke(page, points, pause_ms: int = 25) -> None:
    box = page.locator("#draw-pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(pause_ms)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_maps_and_prediction_follow_the_stroke(make_page, lang):
    page = make_page("desktop")
    page.set_viewport_size({"width": 1366, "height": 768})
    watch = Watch(page)
    page.goto(f"/features?lang={lang}&model=tinyvgg")
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.click("#draw-open")
    expect(page.locator("#draw-panel")).to_be_visible()
    expect(page.locator("#c-model")).to_have_value("lenet5", timeout=20_000)
    wait_updates(page, 0)  # the blank pad, through LeNet-5
    blank = watch.answers[-1]
    assert blank["model"] == "lenet5" and blank["input"]["source"] == "upload"
    assert blank["input"]["shape"] == [1, 32, 32]

    # a vertical stroke down the middle, drawn slowly: updates arrive before the pen lifts
    before, start = updates(page), len(watch.log)
    stroke(page, [(84, 20 + 5 * i) for i in range(27)])
    wait_updates(page, before + 1)
    during, sent = updates(page), watch.log[start:]
    assert during >= before + 2  # at least two updates while the stroke was being drawn
    page.mouse.up()
    # while the pen is down, one request per update: the maps come inline with the answer
    assert set(sent) == {"live"}, sent
    assert during - before <= len(sent) <= during - before + 1  # one may still be in flight
    assert watch.most == 1  # one drawing in flight at a time: frames are dropped, not queued

    # the maps changed with the drawing, and what is shown is the newest answer's
    expect(page.locator("#draw-panel")).to_have_attribute("data-busy", "false")
    page.wait_for_function("() => true")  # the last answer's events reach this side
    assert watch.open == 0
    latest = watch.answers[-1]
    assert latest["id"] != blank["id"]
    first_maps = {layer["name"]: layer["ranges"] for layer in blank["layers"]}
    assert any(layer["ranges"] != first_maps[layer["name"]] for layer in latest["layers"])
    expect(page.locator("#layer-strip img").first).to_have_attribute(
        "src", re.compile(f"/api/features/{latest['id']}/")
    )
    assert same_predictions(shown_predictions(page), latest)
    # the pen lifted: the preprocessing steps show the finished drawing too (mid-stroke they wait)
    steps = page.locator("#step-strip img")
    assert steps.count() == len(latest["preprocessing"])
    for i in range(steps.count()):
        assert f"/api/features/{latest['id']}/" in steps.nth(i).get_attribute("src")
    assert latest["predictions"][0]["label"] == "1"  # LeNet-5 reads a vertical stroke as a one
    save_screenshot(page, f"features-draw-{lang}-1366")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_drawing_at_presenter_and_phone_sizes(make_page, lang):
    for viewport, name in (("projector", "1920"), ("phone", "360")):
        page = make_page(viewport)
        page.goto(f"/features?lang={lang}&model=lenet5")
        page.wait_for_selector(".layer-card", timeout=90_000)
        page.click("#draw-open")
        wait_updates(page, 0)
        page.locator("#draw-pad").scroll_into_view_if_needed()
        stroke(page, [(40 + 4 * i, 40 + 3 * i) for i in range(20)], pause_ms=15)
        page.mouse.up()
        wait_updates(page, 1)
        expect(page.locator("#draw-panel")).to_have_attribute("data-busy", "false")
        shown = page.locator("#layer-strip img").first.get_attribute("src")
        expect(page.locator("#step-strip img").first).to_have_attribute(
            "src", re.compile(re.escape(shown.split("/features.")[0]))
        )
        expect(page.locator("#prediction-list li").first).to_be_visible()
        save_screenshot(page, f"features-draw-{lang}-{name}")
        if viewport == "phone":
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"the phone page scrolls sideways ({width} px)"


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    return (box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
            and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"])  # fmt: skip


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_phone_shows_the_maps_beside_the_pad(make_page, lang):
    """A 360×740 phone: once the pad is open, the pad and the first layer's maps share the
    screen while a stroke is drawn (the maps react where the student looks), with the
    prediction right after; no sideways scroll."""
    page = make_page("phone")
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"/features?lang={lang}&model=lenet5")
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.click("#draw-open")
    wait_updates(page, 0)
    stroke(page, [(84, 20 + 6 * i) for i in range(22)], pause_ms=15)
    page.mouse.up()
    wait_updates(page, 1)
    expect(page.locator("#draw-panel")).to_have_attribute("data-busy", "false")
    first_maps = "#layer-strip .layer-card:first-child .layer-thumb"
    assert in_viewport(page, "#draw-pad"), page.locator("#draw-pad").bounding_box()
    assert in_viewport(page, first_maps), page.locator(first_maps).bounding_box()
    # the layers' maps, then the prediction: just below the pad, before the other controls
    tops = page.evaluate("""() => ['#draw-pad', '.layers', '.predictions', '#c-model']
        .map((s) => document.querySelector(s).getBoundingClientRect().top)""")
    assert tops == sorted(tops), tops
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    save_screenshot(page, f"features-draw-{lang}-360-maps", full_page=False)
