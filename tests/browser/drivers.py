"""Helpers that drive pages in the browser tests.

`url_state(page)` is any page's URL state as a dict; `translated(lang, key, **params)` is a
common.json text with its placeholders filled, as static/js/api.js shows it. `ExplorerPage`
drives a step-through explorer (/conv, /pool; both built on static/js/explorer.js): it opens
the page, records every trace request it sends (the exact body, so a test can recompute the
answer with torch), changes controls and waits for the new trace on screen, and reads the
highlighted cell and the grids.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import torch

from app.i18n import catalogue


def translated(lang: str, key: str, **params) -> str:
    """The `common` catalogue's text for `key` in `lang`, each {name} replaced by its value."""
    text = catalogue(lang, "common")[key]
    for name, value in params.items():
        text = text.replace("{" + name + "}", str(value))
    return text


def url_state(page) -> dict[str, str]:
    """The page's query string as {name: value} (each name appears once in a page's state)."""
    return {key: values[0] for key, values in parse_qs(urlparse(page.url).query).items()}


class ExplorerPage:
    """An explorer page (`/{name}`) plus the `/api/{name}/trace` requests it made."""

    name = ""  # "conv" or "pool": the page path, the trace route and the controls' form id

    def __init__(self, page):
        self.page = page
        self.requests: list[dict] = []
        page.on("request", self._record)

    def _record(self, request):
        if request.url.endswith(f"/api/{self.name}/trace"):
            self.requests.append(json.loads(request.post_data))

    def open(self, query: str = "lang=en"):
        self.page.goto(f"/{self.name}?{query}")
        self.page.wait_for_selector("body[data-ready=true]")
        self.page.wait_for_selector("#stage[data-traces]")
        return self

    def traces(self) -> int:
        return int(self.page.get_attribute("#stage", "data-traces") or 0)

    def change(self, action):
        """Run `action` (which changes the configuration) and wait for the new trace on screen."""
        before = self.traces()
        action()
        self.page.wait_for_function(
            f"() => Number(document.getElementById('stage').dataset.traces) > {before}"
        )

    def set_control(self, name: str, value):
        control = self.page.locator(f'#{self.name}-controls [name="{name}"]')
        kind = control.evaluate("node => node.type")
        if kind == "checkbox":
            self.change(lambda: control.set_checked(bool(value)))
        elif kind.startswith("select"):
            self.change(lambda: control.select_option(str(value)))
        else:
            self.change(lambda: (control.fill(str(value)), control.press("Enter"), control.blur()))

    def position(self) -> tuple[int, int]:
        index, count = self.page.inner_text(".player-position").split("/")
        return int(index), int(count)

    def current(self, root: str = "#output-grids") -> tuple[int, int, int, float, str]:
        """The highlighted cell under `root`: (figure index, row, column, value, shown text)."""
        cell = self.page.locator(f"{root} .hl-current")
        assert cell.count() == 1
        figure = cell.evaluate(
            f"node => [...document.querySelectorAll('{root} .grid-figure')]"
            ".indexOf(node.closest('.grid-figure'))"
        )
        return (
            figure,
            int(cell.get_attribute("data-row")),
            int(cell.get_attribute("data-col")),
            float(cell.get_attribute("data-value")),
            cell.inner_text(),
        )

    def values(self, root: str = "#output-grids") -> torch.Tensor:
        """Every cell's full-precision value under `root`, cropped border excluded, in order."""
        cells = self.page.locator(f"{root} .cell:not(.is-outside)")
        shown = cells.evaluate_all("nodes => nodes.map(node => node.dataset.value)")
        return torch.tensor([float(v) for v in shown], dtype=torch.float64)


def no_sideways_scroll(page) -> None:
    """The page is no wider than its viewport."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways ({width} px)"
