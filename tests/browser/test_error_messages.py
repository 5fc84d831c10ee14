"""API refusals in the reader's language (app/errors.py gives each a `type` and `ctx`,
static/js/api.js translates them): an out-of-range value the server refuses is explained next to
its control in Korean or in English, and 404, 413 and 429 get their general messages, the wait
of a 429 included."""

import pytest
from conftest import check_guard, open_page
from drivers import translated

from app.limits import heavy_work
from app.runs.manager import RunLimits
from app.schemas.gradcheck import GradCheckIn
from app.settings import get_settings

SETTINGS = get_settings()
BOUNDS = GradCheckIn.model_json_schema()["properties"]
EPSILON_MAX = BOUNDS["epsilon"]["maximum"]


@pytest.fixture(scope="module")
def manager(tmp_path_factory, runs_in):
    """The training page lists runs: an empty store of this module's own, not var/."""
    with runs_in(tmp_path_factory.mktemp("error-messages"), RunLimits(max_concurrent=1)) as running:
        yield running


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_out_of_range_value_is_explained_next_to_its_control(page, manager, screenshot, lang):
    page.goto(f"/train?lang={lang}")
    page.wait_for_selector("body[data-ready=true]")
    form = page.locator("#gradcheck-form")
    form.locator("#gc-epsilon").fill("0.5")  # the control allows typing it; the server refuses
    form.locator("#gradcheck-run").click()
    slot = form.locator('[data-error-for="epsilon"]')
    slot.wait_for(state="visible")
    assert slot.inner_text() == translated(lang, "error.type.less_than_equal", le=EPSILON_MAX)
    assert "0.01" in slot.inner_text() and "Input should" not in slot.inner_text()
    assert form.locator("#gc-epsilon").get_attribute("aria-invalid") == "true"
    form.scroll_into_view_if_needed()
    screenshot(page, f"error-message-{lang}", full_page=False)
    page.guard.expect_errors("status of 422", 1)
    form.locator("#gc-epsilon").fill("0.001")
    form.locator("#gradcheck-run").click()
    page.wait_for_selector("#gradcheck-body tr")
    assert slot.is_hidden()


# Each request below rejects with an ApiError; its per-field messages come back to the test.
REQUESTS = """async ([kind, bigBody]) => {
  const api = await import("/static/js/api.js");
  const calls = {
    not_found: () => api.getJSON("/api/models/nope/summary"),
    too_large: () => api.postJSON("/api/conv/trace", { channels: 1, pad: "x".repeat(bigBody) }),
    busy: () => api.postJSON("/api/features", {}),
    busy_without_ctx: () => api.getJSON("/api/test-busy"),
    proxy_too_large: () => api.getJSON("/api/test-proxy"),
    unknown_type: () => api.getJSON("/api/test-unknown"),
  };
  try {
    await calls[kind]();
  } catch (error) {
    return { status: error.status, fields: error.fields };
  }
  return null;
}"""


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_general_refusals_are_translated(make_page, lang):
    page = make_page()
    page.goto(f"/conv?lang={lang}")
    page.wait_for_selector("body[data-ready=true]")

    def refusal(kind: str) -> tuple[int, dict]:
        answer = page.evaluate(REQUESTS, [kind, SETTINGS.max_body_bytes])
        return answer["status"], answer["fields"]

    assert refusal("not_found") == (404, {"*": translated(lang, "error.status.404")})
    page.guard.expect_errors("status of 404", 1)

    limit = f"{SETTINGS.max_body_bytes:,}"  # grouped as the page groups it (ko and en alike)
    assert refusal("too_large") == (
        413,
        {"*": translated(lang, "error.type.too_large", limit=limit)},
    )
    page.guard.expect_errors("status of 413", 1)

    # a real 429: this client already holds every slot of the feature-map group
    busy = heavy_work("features")
    busy.active["127.0.0.1"] = SETTINGS.client_heavy_requests
    try:
        status, fields = refusal("busy")
    finally:
        del busy.active["127.0.0.1"]
    wait = SETTINGS.retry_after_seconds
    assert (status, fields) == (
        429,
        {"*": translated(lang, "error.type.too_many_requests", retry_after=wait)},
    )
    page.guard.expect_errors("status of 429", 1)

    # answers this server does not give but a proxy or an older server might: the wait from the
    # Retry-After header, a plain-text 413, an error type the catalogue does not know
    page.route(
        "**/api/test-busy",
        lambda route: route.fulfill(status=429, headers={"Retry-After": "9"},
                                    json={"detail": [{"loc": ["client"], "msg": "busy",
                                                      "type": "too_many_requests"}]}),
    )  # fmt: skip
    page.route("**/api/test-proxy", lambda r: r.fulfill(status=413, body="Content Too Large"))
    page.route(
        "**/api/test-unknown",
        lambda route: route.fulfill(status=422, json={"detail": [
            {"loc": ["body", "x"], "msg": "server's own words", "type": "brand_new_type"}]}),
    )  # fmt: skip
    assert refusal("busy_without_ctx")[1] == {
        "*": translated(lang, "error.type.too_many_requests", retry_after=9)
    }
    assert refusal("proxy_too_large")[1] == {"*": translated(lang, "error.status.413")}
    assert refusal("unknown_type")[1] == {"x": "server's own words"}
    page.guard.expect_errors("status of 4", 3)


def test_korean_page_shows_no_english_refusal(browser, live_server, manager):
    """Every field of one refused gradient check speaks Korean (several items at once)."""
    page = open_page(browser, live_server)
    try:
        page.goto("/train?lang=ko")
        page.wait_for_selector("body[data-ready=true]")
        form = page.locator("#gradcheck-form")
        form.locator("#gc-epsilon").fill("0.5")
        form.locator("#gc-samples").fill("0")
        form.locator("#gradcheck-run").click()
        for field, key, params in [
            ("epsilon", "error.type.less_than_equal", {"le": EPSILON_MAX}),
            ("samples", "error.type.greater_than_equal", {"ge": BOUNDS["samples"]["minimum"]}),
        ]:
            slot = form.locator(f'[data-error-for="{field}"]')
            slot.wait_for(state="visible")
            assert slot.inner_text() == translated("ko", key, **params)
        page.guard.expect_errors("status of 422", 1)
        check_guard(page)
    finally:
        page.context.close()
