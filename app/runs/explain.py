"""A failed run's diagnosis (cnncore.diagnosis) written out in Korean and English.

The worker adds the result to the run's `diverged` event, so the live page, a replayed run, the
run's record (its summary) and `cnnviz train` all show the same sentences. Texts are the `train`
catalogues' `train.diagnosis.*` keys; numbers are written the same way in both languages
(app.lesson_answers.num) and Korean particles after them agree (app.particles).
"""

from __future__ import annotations

import math
from typing import Any

from app.i18n import LANGUAGES, messages
from app.lesson_answers import num
from app.particles import with_particles

__all__ = ["explanation"]

_PERCENT = ("accuracy", "chance", "fraction")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if name in _PERCENT:
        return f"{num(100 * value, 3)}%"
    if abs(value) >= 1e5 and not isinstance(value, int):  # a blown-up loss: 4.78×10¹¹
        exponent = math.floor(math.log10(abs(value)))
        return f"{num(value / 10**exponent, 3)}×10{str(exponent).translate(_SUPERSCRIPT)}"
    return num(value, 3)


def explanation(diagnosis: dict[str, Any]) -> dict[str, list[str]]:
    """{lang: [what happened, then one sentence per likely cause]} for every language."""
    findings = diagnosis["findings"]
    facts = {"step": diagnosis["step"], **findings[0]["facts"]}
    out: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        msgs = messages(lang, "train")

        def say(key: str, values: dict[str, Any]) -> str:
            filled = {name: _text(name, value) for name, value in values.items()}
            return with_particles(msgs.get(key, key), filled)  # noqa: B023 (used at once)

        lines = [say(f"train.diagnosis.signal.{diagnosis['signal']}", facts)]
        lines += [say(f"train.diagnosis.{f['cause']}", f["facts"]) for f in findings]
        out[lang] = lines
    return out
