"""Korean particles after a filled-in value, chosen by how the value is read aloud.

A catalogue writes a particle pair after a placeholder — `{padding}(으)로`, `{name}은(는)`,
`{code}이(가)`, `{bias}을(를)`, `{a}과(와)` — and the formatter keeps the form the value's last
sound asks for: after a final consonant 으로/은/이/을/과, after a vowel 로/는/가/를/와, and 로
also after ㄹ (National Institute of Korean Language, 표준국어대사전, "-으로" and "-로").

Numbers are read in Sino-Korean: 1 일, 2 이, 3 삼, 6 육, 10 십, 100 백, 1,000 천, 10,000 만, 10⁸ 억,
10¹² 조 — so 1로, 2로, 3으로, 6으로, 10으로, 100으로, 1000으로, 2000으로. A decimal is read digit by
digit after 점, so its last digit decides (0.5로, 2.0으로). `%` is read 퍼센트 and `×` 배. Latin
letters are read by their names (ReLU → 유, Adam → 엠, conv → 브이). The JavaScript twin is
static/js/particles.js; tests/app/test_particles.py holds both to the same cases.
"""

from __future__ import annotations

import re

__all__ = ["MARKERS", "final_sound", "particle", "with_particles"]

# marker → (after a final consonant, after a vowel); 로 also follows ㄹ
MARKERS = {
    "(으)로": ("으로", "로"),
    "은(는)": ("은", "는"),
    "이(가)": ("이", "가"),
    "을(를)": ("을", "를"),
    "과(와)": ("과", "와"),
}
_MARKER = "|".join(re.escape(m) for m in MARKERS)

VOWEL, RIEUL, CONSONANT = "vowel", "rieul", "consonant"
_DIGITS = {"0": CONSONANT, "1": RIEUL, "2": VOWEL, "3": CONSONANT, "4": VOWEL, "5": VOWEL,
           "6": CONSONANT, "7": RIEUL, "8": RIEUL, "9": VOWEL}  # fmt: skip
# 1, 2, … trailing zeros of a whole number → the unit read last: 십 백 천 만 (십만 백만 천만)
# 억 (…천억) end in a consonant, 조 (…천조) in a vowel, 경 in a consonant
_UNITS = [CONSONANT] * 11 + [VOWEL] * 4 + [CONSONANT] * 4
_LETTERS = {letter: VOWEL for letter in "abcdefghijkopqstuvwxyz"}
_LETTERS.update({"l": RIEUL, "r": RIEUL, "m": CONSONANT, "n": CONSONANT})
_SYMBOLS = {"%": VOWEL, "×": VOWEL}  # 퍼센트, 배
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_CLOSING = " \t)]}>\"'’”"
_NUMBER_END = re.compile(r"(\.?)([0-9][0-9,]*)$")


def final_sound(text: str) -> str | None:
    """How `text` ends when read aloud: "vowel", "rieul" (ㄹ), "consonant", or None (unknown)."""
    text = text.translate(_SUPERSCRIPTS).rstrip(_CLOSING)
    if not text:
        return None
    last = text[-1]
    if "가" <= last <= "힣":
        coda = (ord(last) - ord("가")) % 28
        return VOWEL if coda == 0 else RIEUL if coda == 8 else CONSONANT
    if last in "0123456789":
        match = _NUMBER_END.search(text)
        decimal, digits = match[1], match[2].replace(",", "")
        if decimal or digits[-1] != "0" or set(digits) == {"0"}:
            return _DIGITS[digits[-1]]
        zeros = len(digits) - len(digits.rstrip("0"))
        return _UNITS[min(zeros, len(_UNITS)) - 1]
    return _LETTERS.get(last.lower()) or _SYMBOLS.get(last)


def particle(value: str, marker: str) -> str:
    """The form of `marker` (e.g. "(으)로") that follows `value`; the marker itself if unknown."""
    sound = final_sound(value)
    if sound is None:
        return marker
    after_consonant, after_vowel = MARKERS[marker]
    if marker == "(으)로" and sound == RIEUL:
        return after_vowel
    return after_consonant if sound != VOWEL else after_vowel


def with_particles(template: str, values: dict[str, str]) -> str:
    """Fill `{name}` placeholders from `values` (text), choosing each particle marker right after
    one from the value's sound; unknown placeholders stay as they are."""

    def fill(match: re.Match) -> str:
        name, marker = match[1], match[2]
        if name not in values:
            return match[0]
        value = values[name]
        return value + (particle(value, marker) if marker else "")

    return re.sub(r"\{(\w+)\}(" + _MARKER + ")?", fill, template)
