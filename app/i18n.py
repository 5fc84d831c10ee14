"""Message catalogues (Korean and English) and the language choice for a request.

Catalogues are flat JSON files `static/i18n/<lang>/<name>.json` (`common` plus one per page), so
templates (server) and ES modules (browser) read the very same strings.
"""

import json
from functools import lru_cache

from fastapi import Request

from app.settings import ROOT

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"  # the audience reads Korean first
CATALOGUE_DIR = ROOT / "static" / "i18n"


@lru_cache(maxsize=64)
def catalogue(lang: str, name: str) -> dict[str, str]:
    path = CATALOGUE_DIR / lang / f"{name}.json"
    if lang not in LANGUAGES or not path.is_file() or not name.isidentifier():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def messages(lang: str, *names: str) -> dict[str, str]:
    """`common` plus the named catalogues, English filling any key Korean lacks."""
    merged: dict[str, str] = {}
    for name in ("common", *names):
        merged.update(catalogue("en", name))
        merged.update(catalogue(lang, name))
    return merged


def choose_language(request: Request) -> str:
    """`?lang=` first, then the `lang` cookie, then the best of Accept-Language, else Korean."""
    for candidate in (request.query_params.get("lang"), request.cookies.get("lang")):
        if candidate in LANGUAGES:
            return candidate
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, q = part.strip().partition(";q=")
        lang = tag.split("-")[0].lower()
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if lang in LANGUAGES and weight > best_q:
            best, best_q = lang, weight
    return best
