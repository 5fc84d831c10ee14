"""The activation explorer in a real browser: the readout equals torch's function and autograd
derivative; the vanishing-gradient bars equal the API's (and cnncore's) numbers."""

import json

import pytest
import torch
import torch.nn.functional as F
from drivers import url_state

from cnncore.vanishing import vanishing_gradients

FUNCTIONS = {
    "sigmoid": lambda x, p: torch.sigmoid(x),
    "tanh": lambda x, p: torch.tanh(x),
    "relu": lambda x, p: F.relu(x),
    "leaky_relu": lambda x, p: F.leaky_relu(x, p["slope"]),
    "elu": lambda x, p: F.elu(x, p["alpha"]),
    "gelu": lambda x, p: F.gelu(x),
    "silu": lambda x, p: F.silu(x),
}


class ActivationsPage:
    def __init__(self, page):
        self.page = page
        self.curves: list[dict] = []
        self.deeps: list[dict] = []
        page.on("request", self._record)

    def _record(self, request):
        if request.url.endswith("/api/functions/activation"):
            self.curves.append(json.loads(request.post_data))
        elif request.url.endswith("/api/functions/vanishing"):
            self.deeps.append(json.loads(request.post_data))

    def open(self, query: str = "lang=en"):
        self.page.goto(f"/activations?{query}")
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def count(self, name: str) -> int:
        return int(self.page.evaluate(f"document.body.dataset.{name} || 0"))

    def change(self, name: str, action):
        before = self.count(name)
        action()
        self.page.wait_for_function(f"() => Number(document.body.dataset.{name}) > {before}")

    def readout(self) -> tuple[float, float, float]:
        data = self.page.locator("#readout").evaluate("node => ({...node.dataset})")
        return float(data["x"]), float(data["y"]), float(data["dy"])


def expected_at(name: str, x: float, params: dict) -> tuple[float, float]:
    point = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = FUNCTIONS[name](point, params)
    (slope,) = torch.autograd.grad(value, point)
    return value.item(), slope.item()


def check_readout(view: ActivationsPage) -> None:
    request = view.curves[-1]
    x, y, dy = view.readout()
    value, slope = expected_at(request["name"], x, request)
    assert y == pytest.approx(value, abs=1e-12) and dy == pytest.approx(slope, abs=1e-12)
    shown = view.page.inner_text("#readout")
    assert f"{value:.4f}".rstrip("0").rstrip(".") in shown


def test_readout_equals_torch_while_hovering(page, screenshot):
    view = ActivationsPage(page).open()
    box = page.locator("#curve-chart svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.getElementById('readout').dataset.x !== undefined")
    check_readout(view)
    assert page.locator("#curve-chart .chart-dot").count() == 2
    screenshot(page, "activations-desktop")


def test_keyboard_moves_the_readout(page):
    view = ActivationsPage(page).open("lang=en&fn=tanh")
    page.focus("#curve-chart svg")
    page.keyboard.press("ArrowRight")
    first = view.readout()[0]
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert view.readout()[0] > first
    check_readout(view)


@pytest.mark.parametrize(("name", "control", "value"),
                         [("leaky_relu", "slope", "0.3"), ("elu", "alpha", "2.5")])
def test_parameters_act_live(page, name, control, value):
    view = ActivationsPage(page).open(f"lang=en&fn={name}&start=-4&stop=2")
    view.change("curves", lambda: page.locator(f'[name="{control}"]').fill(value))
    assert view.curves[-1][control] == float(value)
    page.focus("#curve-chart svg")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")  # onto the negative side, where the parameter shows
    x, y, dy = view.readout()
    assert x < 0
    check_readout(view)
    assert f"{control}={value}" in page.url


def test_vanishing_bars_equal_the_core_and_show_the_collapse(page, screenshot):
    view = ActivationsPage(page).open("lang=en&depth=12")
    page.wait_for_selector('#deep-legend [data-activation="relu"]')
    sigmoid = float(page.get_attribute('#deep-legend [data-activation="sigmoid"]', "data-ratio"))
    relu = float(page.get_attribute('#deep-legend [data-activation="relu"]', "data-ratio"))
    assert sigmoid < 1e-4 < 0.1 < relu
    bars = page.locator('#deep-chart .chart-bar[data-series="sigmoid"]')
    assert bars.count() == 13  # 12 hidden layers and the classifier
    shown = [float(v) for v in bars.evaluate_all("ns => ns.map(n => n.dataset.value)")]
    request = [r for r in view.deeps if r["activation"] == "sigmoid"][-1]
    options = {k: request[k] for k in ("width", "batch_norm", "init", "seed", "slope", "alpha")}
    report = vanishing_gradients("sigmoid", request["depth"], **options)
    assert shown == pytest.approx([layer.grad_norm for layer in report.layers], rel=1e-12)
    screenshot(page, "activations-vanishing")


def test_batch_norm_rescues_sigmoid(page):
    view = ActivationsPage(page).open("lang=en&depth=20&compare=none")
    before = float(page.get_attribute('#deep-legend [data-activation="sigmoid"]', "data-ratio"))
    view.change("deeps", lambda: page.check('[name="batch_norm"]'))
    after = float(page.get_attribute('#deep-legend [data-activation="sigmoid"]', "data-ratio"))
    assert before < 1e-6 and after > 0.1
    assert view.deeps[-1]["batch_norm"] is True and "batch_norm=1" in page.url


def test_url_round_trip_and_korean(page):
    view = ActivationsPage(page).open("lang=ko&fn=gelu&deep=tanh&compare=relu&depth=7&init=xavier")
    assert page.input_value('[name="fn"]') == "gelu"
    assert page.input_value('[name="init"]') == "xavier"
    assert view.curves[-1]["name"] == "gelu"
    assert {r["activation"] for r in view.deeps} == {"tanh", "relu"}
    assert all(r["depth"] == 7 and r["init"] == "xavier" for r in view.deeps)
    assert page.inner_text("h1") == "활성화 함수"
    state = url_state(page)
    assert state["deep"] == "tanh" and state["depth"] == "7"


def test_bad_range_is_named(page):
    view = ActivationsPage(page).open("lang=en")
    page.fill('[name="start"]', "9")
    page.press('[name="start"]', "Enter")
    error = page.locator('[data-error-for="stop"]')
    error.wait_for(state="visible")
    assert "below" in error.inner_text()
    start = page.locator('[name="start"]')
    view.change("curves", lambda: (start.fill("-3"), start.press("Enter")))
    assert not error.is_visible()
    page.guard.expect_errors("status of 422", 1)
