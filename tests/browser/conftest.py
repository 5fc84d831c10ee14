"""Browser-test infrastructure: a live server, headless Chromium, and guards every test gets.

- `live_server` (session): the real app under uvicorn on a free loopback port, in a thread
  (`live.py`, shared with the browser benchmarks), with a data folder of the session's own
  (CNNVIZ_DATA_DIR): runs, checkpoints and uploads never come from nor go to the developer's
  var/, so no test depends on leftovers.
- `browser` (session): Playwright driving Debian's Chromium (Playwright's own browser download
  cannot work offline), with the flags the project prescribes (`live.CHROMIUM_ARGS`).
- `page` (function): a fresh 1280×900 context on that server; the test fails if the page
  requested any URL outside the server, logged a console error (a CSP violation, a missing
  message, an uncaught exception, a 4xx/5xx answer) or raised a page error. A test that provokes
  an error on purpose calls `page.guard.expect_errors("status of 422", n)`.
- `make_page(viewport, **context_options)`: more pages ("desktop", "phone" 360 px, "projector"
  1920 px; Playwright context options such as locale or reduced_motion), guarded the same way.
- `runs_in(folder, limits)`: `with runs_in(...) as manager:` the app's runs live in `folder` (a
  store and checkpoints of the module's own) for the length of the block: the routes'
  manager and the process-wide one (which /features and the receptive-field page use to find a
  run's checkpoint) alike.
- `screenshot(page, name)`: saves test-artifacts/<name>.png (gitignored) to look at.
Every test collected under tests/browser/ carries the `browser` marker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from live import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORTS = {"desktop": (1280, 900), "laptop": (1366, 768), "phone": (360, 760),
             "projector": (1920, 1080)}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[str]:
    from app.runs.manager import use_run_manager
    from app.settings import get_settings

    before = os.environ.get("CNNVIZ_DATA_DIR")
    os.environ["CNNVIZ_DATA_DIR"] = str(tmp_path_factory.mktemp("browser-data"))
    get_settings.cache_clear()
    earlier = use_run_manager(None)  # made again, in the session's folder, on first use
    base_url, server, thread = start_server()
    try:
        yield base_url
    finally:
        stop_server(server, thread)
        made = use_run_manager(earlier)
        if made is not None and made is not earlier:
            made.close()
            made.store.close()
        if before is None:
            os.environ.pop("CNNVIZ_DATA_DIR", None)
        else:
            os.environ["CNNVIZ_DATA_DIR"] = before
        get_settings.cache_clear()


@contextmanager
def _runs_in(folder: Path, limits) -> Iterator:
    """A run manager over its own SQLite store and checkpoints in `folder`, serving the app's
    `get_run_manager` until the block ends (then closed, and the override removed)."""
    from app.main import app
    from app.runs.manager import RunManager, get_run_manager, use_run_manager
    from app.runs.store import SQLiteRunStore

    store = SQLiteRunStore(folder / "cnnviz.sqlite3")
    running = RunManager(store, folder / "checkpoints", limits)
    app.dependency_overrides[get_run_manager] = lambda: running
    previous = use_run_manager(running)
    try:
        yield running
    finally:
        use_run_manager(previous)
        app.dependency_overrides.pop(get_run_manager, None)
        running.close()
        store.close()


@pytest.fixture(scope="session")
def runs_in():
    """`with runs_in(folder, RunLimits(...)) as running:` (a module's `manager` fixture)."""
    return _runs_in


@pytest.fixture(scope="session")
def playwright_driver():
    """The one Playwright driver of the run: a second `sync_playwright()` while this one runs
    fails ("Sync API inside the asyncio loop"), so a module that needs other browser flags
    launches its browser from this driver."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make chromium` (Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_driver):
    instance = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def camera_browser(playwright_driver):
    """Chromium with its fake camera (a test pattern), granted without asking (the /teach
    tests): launched from the one driver, like `browser`."""
    instance = playwright_driver.chromium.launch(executable_path=CHROMIUM,
                                                 args=[*CHROMIUM_ARGS, *FAKE_CAMERA])  # fmt: skip
    yield instance
    instance.close()


class PageGuard:
    """What a page did that a test must not accept: outside requests, console errors."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.outside: list[str] = []
        self.errors: list[str] = []

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base_url + "/") or url == self.base_url or url.startswith("data:"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def console(self, message) -> None:
        # Chromium logs every 4xx/5xx answer as a console error: a test that provokes one on
        # purpose (a 422 naming a field) asserts it and removes it from `errors`.
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def expect_errors(self, fragment: str, count: int) -> None:
        """Assert `count` logged errors contain `fragment` ("status of 422"), then drop them."""
        matching = [error for error in self.errors if fragment in error]
        assert len(matching) == count, f"expected {count} × {fragment!r}, got {self.errors}"
        self.errors[:] = [error for error in self.errors if fragment not in error]

    def response(self, response) -> None:
        if response.status >= 500:
            self.errors.append(f"server error {response.status}: {response.url}")

    def page_error(self, error) -> None:
        self.errors.append(f"page error: {error}")


def open_page(browser, live_server: str, viewport: str = "desktop", **context_options):
    """A new page in its own context at one of VIEWPORTS, with its guard attached."""
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(
        viewport={"width": width, "height": height},
        base_url=live_server,
        **context_options,
    )
    guard = PageGuard(live_server)
    context.route("**/*", guard.route)
    page = context.new_page()
    page.on("console", guard.console)
    page.on("pageerror", guard.page_error)
    page.on("response", guard.response)
    page.guard = guard
    return page


def check_guard(page) -> None:
    guard: PageGuard = page.guard
    assert guard.outside == [], f"requests outside the server: {guard.outside}"
    assert guard.errors == [], "\n".join(guard.errors)


@pytest.fixture
def page(browser, live_server):
    page = open_page(browser, live_server)
    yield page
    try:
        check_guard(page)
    finally:
        page.context.close()


@contextmanager
def guarded_pages(browser, live_server: str) -> Iterator:
    """A page factory on `browser` whose pages are all checked and closed when the block ends
    (make_page's, for a module that launches its own browser with other flags)."""
    pages = []

    def make(viewport: str = "desktop", **options):
        new = open_page(browser, live_server, viewport, **options)
        pages.append(new)
        return new

    try:
        yield make
        for each in pages:
            check_guard(each)
    finally:
        for each in pages:
            each.context.close()


@pytest.fixture
def make_page(browser, live_server):
    """Factory for pages at other viewports or options: make_page("phone", locale="ko-KR")."""
    with guarded_pages(browser, live_server) as make:
        yield make


def save_screenshot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def screenshot():
    """screenshot(page, name): save test-artifacts/<name>.png (look at it)."""
    return save_screenshot


TWO_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def steady_box(page, selector: str, tries: int = 50) -> dict:
    """The element's box once it has stayed put over two animation frames: a stroke drawn from a
    box read while the page still moves (a card appearing above it, pictures loading) misses."""
    locator = page.locator(selector)
    locator.scroll_into_view_if_needed()
    before = locator.bounding_box()
    for _ in range(tries):
        page.evaluate(TWO_FRAMES)
        now = locator.bounding_box()
        if now == before:
            return now
        before = now
    raise AssertionError(f"{selector} kept moving: {before}")


@contextmanager
def own_datasets(folder: Path) -> Iterator:
    """A dataset service in `folder` (not the live server's data folder) given to the app for
    a module's pages, and taken back and closed after them."""
    from app.datasets.service import Datasets, get_datasets
    from app.main import app
    from app.settings import Settings

    made = Datasets.from_settings(Settings(data_dir=folder))
    app.dependency_overrides[get_datasets] = lambda: made
    try:
        yield made
    finally:
        app.dependency_overrides.pop(get_datasets, None)
        made.close()
