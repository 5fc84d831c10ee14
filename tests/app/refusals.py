"""What the API-refusal tests check of every 422 item: both languages' catalogues have a text for
its `type`, and each placeholder of that text is filled by its `ctx` (static/js/api.js fills them
the same way)."""

from __future__ import annotations

import re

from app.i18n import LANGUAGES, catalogue

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def translatable(item: dict) -> dict:
    """The item, after checking both languages have its text with every placeholder filled."""
    for lang in LANGUAGES:
        text = catalogue(lang, "common")[f"error.type.{item['type']}"]
        assert set(PLACEHOLDER.findall(text)) <= set(item.get("ctx", {})), (lang, item)
    return item


def refusal(response) -> dict:
    """The one detail item of a 422 answer, translatable in full."""
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    return translatable(item)
