"""One Korean term per concept across pages and lessons: the glossary (static/i18n/glossary.json)
names the term and the alternatives no catalogue may use, and every term it keeps is in use."""

import json
import re

import pytest

from app.i18n import CATALOGUE_DIR, catalogue

GLOSSARY = json.loads((CATALOGUE_DIR / "glossary.json").read_text(encoding="utf-8"))["terms"]
NAMES = sorted(path.stem for path in (CATALOGUE_DIR / "ko").glob("*.json"))
KOREAN = {name: catalogue("ko", name) for name in NAMES}


@pytest.mark.parametrize("term", GLOSSARY, ids=[term["en"] for term in GLOSSARY])
def test_catalogues_use_the_glossary_term_not_its_alternatives(term):
    found = [
        f"{name}.json {key}: …{alternative}…"
        for name, texts in KOREAN.items()
        for key, text in texts.items()
        for alternative in term["avoid"]
        # a whole word: 레이어 (layer) is wrong, 플레이어 (player) is another word
        if re.search(r"(?<![가-힣])" + re.escape(alternative), text)
    ]
    assert not found, f"write {term['ko']!r} for {term['en']!r}: {found}"
    assert any(term["ko"] in text for texts in KOREAN.values() for text in texts.values())


def test_the_glossary_is_consistent():
    preferred = [term["ko"] for term in GLOSSARY]
    assert len(set(preferred)) == len(preferred)
    for term in GLOSSARY:
        for alternative in term["avoid"]:
            assert term["ko"] not in alternative or alternative.replace(" ", "") != term["ko"]
            assert alternative not in preferred
