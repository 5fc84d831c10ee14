"""The pooling explorer in a real browser: every number it shows equals torch's pooling (and
autograd for the backward view), recomputed from the exact request the page sent."""

from urllib.parse import urlparse

import pytest
import torch
import torch.nn.functional as F
from drivers import ExplorerPage, url_state


class PoolPage(ExplorerPage):
    """A /pool page plus the trace requests it made (the main trace and the comparison)."""

    name = "pool"

    def main_request(self) -> dict:
        """The last request of the explorer's own kind (not one of the comparison's)."""
        kind = self.page.input_value('#pool-controls [name="kind"]')
        return [r for r in self.requests if r["kind"] == kind][-1]


def torch_pool(body: dict, kind: str | None = None) -> torch.Tensor:
    x = torch.tensor(body["input"], dtype=torch.float64)[None]
    kind = kind or body["kind"]
    kernel, stride, padding = body["kernel_size"], body["stride"], body["padding"]
    if kind == "max":
        return F.max_pool2d(x, kernel, stride, padding, ceil_mode=body["ceil_mode"])[0]
    if kind == "avg":
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=body["ceil_mode"],
                            count_include_pad=body["count_include_pad"])[0]
    if kind == "global_avg":
        return F.adaptive_avg_pool2d(x, 1)[0]
    # L2 with zero padding: torch's lp_pool2d on the zero-padded input
    padded = F.pad(x, (padding, padding, padding, padding))
    return F.lp_pool2d(padded, 2, kernel, stride, ceil_mode=body["ceil_mode"])[0]


def test_max_pooling_steps_match_torch_and_mark_the_argmax(page, screenshot):
    pool = PoolPage(page).open()
    assert pool.position() == (1, 16)  # 8×8 digit, 2×2 windows, stride 2
    for _ in range(5):
        page.click(".player-next")
    body = pool.main_request()
    x = torch.tensor(body["input"], dtype=torch.float64)[None]
    expected, indices = F.max_pool2d(x, 2, return_indices=True)
    channel, y, xx, value, _ = pool.current()
    assert (channel, y, xx) == (0, 1, 1)
    assert value == expected[0, 0, 1, 1].item()
    # the chosen input cell is torch's argmax (first maximum in row-major order)
    _, row, col, chosen, _ = pool.current("#input-grids")
    assert row * 8 + col == indices[0, 0, 1, 1].item() and chosen == value
    window = page.locator("#input-grids .hl-window")
    cells = {(int(c.get_attribute("data-row")), int(c.get_attribute("data-col")))
             for c in window.all()}
    assert cells == {(r, c) for r in (2, 3) for c in (2, 3)}
    assert float(page.inner_text("#pool-math .math-sum")) == pytest.approx(value, abs=5e-5)
    assert page.inner_text("#fact-output") == "1×4×4"
    screenshot(page, "pool-desktop")


def test_average_with_padding_and_ceil_mode_matches_torch(page):
    pool = PoolPage(page).open("lang=en&input=random&size=7")
    pool.set_control("kind", "avg")
    pool.set_control("kernel", 3)
    pool.set_control("stride", 2)
    pool.set_control("padding", 1)
    pool.set_control("ceil", True)
    pool.set_control("include_pad", False)
    body = pool.main_request()
    assert (body["kernel_size"], body["stride"], body["padding"]) == (3, 2, 1)
    assert body["ceil_mode"] is True and body["count_include_pad"] is False
    expected = torch_pool(body)
    assert pool.position() == (1, expected.numel())
    assert page.inner_text("#fact-output") == "×".join(map(str, expected.shape))
    page.click(".player-last")
    torch.testing.assert_close(pool.values("#output-grids"), expected.flatten())
    # the last window hangs over the padding: the formula says ⌈·⌉
    assert "⌈" in page.inner_text("#formula-height")


def test_backward_view_routes_gradients_like_autograd(page, screenshot):
    pool = PoolPage(page).open("lang=en&input=random&size=6&kernel=3&stride=2&padding=1")
    pool.set_control("backward", True)
    body = pool.requests[-1]
    assert "grad_output" in body
    x = torch.tensor(body["input"], dtype=torch.float64, requires_grad=True)
    out = F.max_pool2d(x[None], 3, 2, 1)[0]
    (expected,) = torch.autograd.grad(out, x, torch.tensor(body["grad_output"],
                                                            dtype=torch.float64))
    assert page.locator("#grad-in-grids .grid").count() == 1
    page.click(".player-last")
    torch.testing.assert_close(pool.values("#grad-in-grids"), expected.flatten())
    page.click(".player-first")  # the first route alone: only its argmax holds a gradient
    first = pool.values("#grad-in-grids")
    assert (first != 0).sum().item() == 1
    assert first.sum().item() == body["grad_output"][0][0][0]
    assert "goes to" in page.inner_text("#pool-math")
    screenshot(page, "pool-backward")


def test_the_same_picture_pooled_three_ways(page):
    pool = PoolPage(page).open("lang=en&kernel=3&stride=1&padding=1")
    page.wait_for_selector('#compare-grids .grid-figure[data-kind="l2"]')
    for kind in ("max", "avg", "l2"):
        request = [r for r in pool.requests if r["kind"] == kind][-1]
        shown = pool.values(f'#compare-grids .grid-figure[data-kind="{kind}"]')
        torch.testing.assert_close(shown, torch_pool(request, kind)[0].flatten())


def test_global_average_pooling_is_one_window(page):
    pool = PoolPage(page).open("lang=en&kind=global_avg&input=rgb_patch&channels=3")
    assert pool.position() == (1, 3)  # one output per channel
    assert page.is_disabled('#pool-controls [name="kernel"]')
    assert page.locator("#input-grids .grid-figure").first.locator(".hl-window").count() == 64
    page.click(".player-last")
    torch.testing.assert_close(pool.values("#output-grids"),
                               torch_pool(pool.main_request()).flatten())


def test_url_round_trip(page):
    pool = PoolPage(page).open("lang=en&kind=l2&kernel=3&stride=1&step=4")
    assert page.input_value('#pool-controls [name="kind"]') == "l2"
    assert page.input_value('#pool-controls [name="kernel"]') == "3"
    assert pool.position()[0] == 5
    pool.set_control("padding", 1)
    page.wait_for_function("() => new URLSearchParams(location.search).get('padding') === '1'")
    state = url_state(page)
    assert state["kind"] == "l2" and state["stride"] == "1" and state["lang"] == "en"
    request = pool.main_request()
    again = PoolPage(page).open(urlparse(page.url).query)
    assert again.main_request() == request


def test_hover_previews_a_window_and_click_jumps_there(page):
    pool = PoolPage(page).open("lang=en")
    page.hover('#output-grids .cell[data-row="2"][data-col="3"]')
    hovered = page.locator("#input-grids .hl-hover")
    cells = {(int(c.get_attribute("data-row")), int(c.get_attribute("data-col")))
             for c in hovered.all()}
    assert cells == {(r, c) for r in (4, 5) for c in (6, 7)}
    assert page.locator("#pool-math .badge").count() == 1
    page.click('#output-grids .cell[data-row="2"][data-col="3"]')
    assert pool.position() == (12, 16)


def test_bad_configuration_is_shown_next_to_its_control(page):
    pool = PoolPage(page).open("lang=en&kernel=2")
    page.select_option('#pool-controls [name="padding"]', "2")  # more than half the window
    error = page.locator('[data-error-for="padding"]')
    error.wait_for(state="visible")
    assert "half" in error.inner_text()
    pool.set_control("padding", "1")
    assert not error.is_visible()
    # the trace was refused, and so were the three compared poolings unless the next change
    # cancelled them first
    refused = sum("status of 422" in error for error in page.guard.errors)
    assert 1 <= refused <= 4
    page.guard.expect_errors("status of 422", refused)


def test_korean_page_and_phone_layout(make_page, screenshot):
    phone = make_page("phone", locale="ko-KR")
    PoolPage(phone).open("backward=1")
    assert phone.evaluate("document.documentElement.lang") == "ko"
    overflow = phone.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a 360 px phone"
    screenshot(phone, "pool-phone-ko")


@pytest.mark.parametrize("kind", ["avg", "l2"])
def test_every_kind_written_out_equals_the_shown_value(page, kind):
    pool = PoolPage(page).open(f"lang=en&kind={kind}&input=random&kernel=2&stride=1")
    page.click(".player-next")
    expected = torch_pool(pool.main_request())
    channel, y, x, value, _ = pool.current()
    assert value == pytest.approx(expected[channel, y, x].item(), abs=1e-12)
    assert page.locator("#pool-math .term").count() >= 4
