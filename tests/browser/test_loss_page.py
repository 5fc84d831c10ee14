"""The softmax-and-loss explorer in a real browser: dragging a logit updates the probabilities,
terms, loss and gradient, each equal to torch (F.cross_entropy, BCE with logits, autograd) or to
the focal loss written from Lin et al. (2017)."""

import json
import math
from urllib.parse import parse_qs, urlparse

import pytest
import torch
import torch.nn.functional as F
from drivers import url_state

LN = {"e": 1.0, "2": math.log(2), "10": math.log(10)}


class LossPage:
    def __init__(self, page):
        self.page = page
        self.requests: list[dict] = []
        page.on("request", self._record)

    def _record(self, request):
        if request.url.endswith("/api/functions/loss"):
            self.requests.append(json.loads(request.post_data))

    def open(self, query: str = "lang=en"):
        self.page.goto(f"/loss?{query}")
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def answers(self) -> int:
        return int(self.page.evaluate("document.body.dataset.answers || 0"))

    def change(self, action):
        before = self.answers()
        action()
        self.page.wait_for_function(f"() => Number(document.body.dataset.answers) > {before}")

    def loss(self) -> float:
        return float(self.page.get_attribute("#loss-value", "data-value"))

    def column(self, index: int) -> list[str]:
        return self.page.locator(f"#terms-body tr td:nth-child({index})").all_inner_texts()


def torch_loss(body: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and its gradient with respect to the logits, from torch."""
    z = torch.tensor(body["logits"], dtype=torch.float64, requires_grad=True)
    scaled = z / body["temperature"]
    target = body["target"]
    if body["kind"] == "binary_cross_entropy":
        loss = F.binary_cross_entropy_with_logits(scaled, torch.tensor([float(target)],
                                                                        dtype=torch.float64))
    elif body["kind"] == "focal":  # −α (1 − p_t)^γ ln p_t, Lin et al. eq. 5
        p_t = torch.softmax(scaled, 0)[target]
        alpha = 1.0 if body["alpha"] is None else body["alpha"]
        loss = -alpha * (1 - p_t) ** body["gamma"] * torch.log(p_t)
    else:
        goal = torch.tensor([target]) if isinstance(target, int) else torch.tensor(
            [target], dtype=torch.float64)
        loss = F.cross_entropy(scaled[None], goal)
    loss = loss / LN[body["log_base"]]
    (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


def test_dragging_a_logit_updates_every_number(page, screenshot):
    view = LossPage(page).open()
    view.change(lambda: page.locator("#score-1").fill("3.5"))
    body = view.requests[-1]
    assert body["logits"][1] == 3.5 and body["target"] == 0
    loss, grad = torch_loss(body)
    assert view.loss() == pytest.approx(loss.item(), rel=1e-12)
    p = torch.softmax(torch.tensor(body["logits"], dtype=torch.float64), 0)
    assert [float(v) for v in view.column(3)] == pytest.approx(p.tolist(), abs=5e-5)
    # the gradient column is p − y, equal to autograd's
    assert [float(v) for v in view.column(6)] == pytest.approx(grad.tolist(), abs=5e-5)
    assert [float(v) for v in view.column(6)] == pytest.approx((p - torch.tensor(
        [1.0, 0, 0], dtype=torch.float64)).tolist(), abs=5e-5)
    bars = page.locator('#probs-chart .chart-bar[data-series="p"]')
    shown = [float(v) for v in bars.evaluate_all("ns => ns.map(n => n.dataset.value)")]
    assert shown == pytest.approx(p.tolist(), rel=1e-12)
    # the page writes its URL throttled: wait for the change to reach it
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('logits') === '2,3.5,0.1'"
    )
    assert parse_qs(urlparse(page.url).query)["logits"] == ["2,3.5,0.1"]
    screenshot(page, "loss-desktop")


def test_label_smoothing_base_2_and_temperature(page):
    view = LossPage(page).open("lang=en&classes=4&target=2&base=2")
    view.change(lambda: page.locator('[name="smoothing"]').fill("0.2"))
    view.change(lambda: page.locator('[name="temperature"]').fill("2.5"))
    body = view.requests[-1]
    assert body["target"] == pytest.approx([0.05, 0.05, 0.85, 0.05])
    assert len(body["logits"]) == 4 and body["log_base"] == "2" and body["temperature"] == 2.5
    loss, _ = torch_loss(body)
    assert view.loss() == pytest.approx(loss.item(), rel=1e-12)
    terms = [float(v) for v in page.locator("#terms-body td:nth-child(5)").evaluate_all(
        "ns => ns.map(n => n.dataset.value)")]
    assert sum(terms) == pytest.approx(view.loss(), rel=1e-12)
    assert all(t > 0 for t in terms)  # every class carries target mass now


def test_focal_loss_and_its_easy_hard_comparison(page, screenshot):
    view = LossPage(page).open("lang=en&kind=focal&gamma=2")
    assert page.is_visible("#comparison")
    body = view.requests[-1]
    loss, _ = torch_loss(body)
    assert view.loss() == pytest.approx(loss.item(), rel=1e-12)
    easy = page.locator('#comparison-body tr[data-example="easy"] td')
    assert easy.all_inner_texts()[-1] == "100×"  # Lin et al. §3.2: p_t = 0.9, γ = 2 → 100×
    view.change(lambda: page.select_option('[name="alpha"]', "0.25"))
    assert view.requests[-1]["alpha"] == 0.25
    assert easy.all_inner_texts()[-1] == "400×"
    loss, _ = torch_loss(view.requests[-1])
    assert view.loss() == pytest.approx(loss.item(), rel=1e-12)
    screenshot(page, "loss-focal")


def test_binary_cross_entropy(page):
    view = LossPage(page).open("lang=en&kind=binary_cross_entropy&target=1")
    assert page.locator("#scores input[type=range]").count() == 1
    view.change(lambda: page.locator("#score-0").fill("-1.3"))
    body = view.requests[-1]
    assert body["logits"] == [-1.3] and body["target"] == 1
    loss, grad = torch_loss(body)
    assert view.loss() == pytest.approx(loss.item(), rel=1e-12)
    assert float(view.column(6)[1]) == pytest.approx(grad.item(), abs=5e-5)


def test_probabilities_must_sum_to_one(page):
    view = LossPage(page).open("lang=en&mode=probs&probs=0.5,0.3,0.1")
    error = page.locator('[data-error-for="probs"]')
    error.wait_for(state="visible")
    assert "sum to 1" in error.inner_text()
    view.change(lambda: page.click("#normalise"))
    assert not error.is_visible()
    body = view.requests[-1]
    assert sum(body["probs"]) == pytest.approx(1.0, abs=1e-9)
    assert view.loss() == pytest.approx(-math.log(body["probs"][0]), rel=1e-9)
    page.guard.expect_errors("status of 422", 1)


def test_url_round_trip(page):
    view = LossPage(page).open("lang=en&kind=focal&classes=5&target=3&gamma=1.5&logits=1,2,3,4,5")
    assert page.input_value('[name="classes"]') == "5"
    assert page.input_value('[name="target"]') == "3"
    assert page.locator("#scores input[type=range]").count() == 5
    body = view.requests[-1]
    assert body["logits"] == [1, 2, 3, 4, 5] and body["gamma"] == 1.5 and body["target"] == 3
    state = url_state(page)
    again = LossPage(page).open(urlparse(page.url).query)
    assert again.requests[-1] == body and state["kind"] == "focal"
