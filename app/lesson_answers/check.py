"""What a student answers to a lesson question, and how the answer is checked.

A question's `Check` names one part of its computed answer: a number the student types (compared
within a relative tolerance, 0 for counts, which must be exact) or one of a few options (the right
one follows from the computed values by a rule: the smallest, the largest, the one nearest 1). The
expected answer is therefore never written by hand: it is read from what cnncore computed.

Typed numbers are read as people write them: `61,706`, `61 706`, `0.417`, `−0.34`, `5.6e-5`,
`5.6×10^-5`, `1/4`, `25%` (= 0.25 only where the checked value is a share).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.lesson_answers.common import Answer, Number

__all__ = ["Check", "choice", "number", "parse_number"]

KINDS = ("number", "choice")
RULES = ("smallest", "largest", "nearest_one")
MAX_ANSWER_CHARS = 40

_POWER = re.compile(r"^([+-]?[\d.]+)(?:\*|x|×|·)10\^?([+-]?\d+)$")
_FRACTION = re.compile(r"^([+-]?[\d.]+)/([\d.]+)$")


@dataclass(frozen=True)
class Check:
    """The part of a question's answer a student gives, and how it is compared."""

    kind: str  # "number" | "choice"
    label: str = ""  # number: the Answer whose value is asked
    index: tuple[int, ...] = ()  # number: the place inside a tuple answer (a shape's height …)
    part: str = ""  # number: which place that is, a catalogue key under "lessons.part."
    tolerance: float = 0.0  # number: relative; 0 = exact (counts, sizes)
    percent: bool = False  # number: the value is a share, typed in percent
    options: tuple[str, ...] = ()  # choice: Answer labels compared, also the option ids
    rule: str = ""  # choice: how the right option follows from their values

    def expected(self, answers: Sequence[Answer]) -> Number | str:
        """The number to type (in percent for a share) or the id of the right option."""
        by_label = {answer.label: answer.exact for answer in answers}
        if self.kind == "choice":
            values = {option: float(by_label[option]) for option in self.options}
            if self.rule == "smallest":
                return min(values, key=values.__getitem__)
            if self.rule == "largest":
                return max(values, key=values.__getitem__)
            return min(values, key=lambda option: abs(math.log(values[option])))
        value: Any = by_label[self.label]
        for at in self.index:
            value = value[at]
        return 100 * value if self.percent else value

    def is_correct(self, given: str | float, answers: Sequence[Answer]) -> bool:
        """True when `given` (typed text, a number or an option id) is the expected answer."""
        expected = self.expected(answers)
        if self.kind == "choice":
            return given == expected
        typed = parse_number(given)
        if typed is None:
            return False
        if self.tolerance == 0:
            return typed == expected
        return math.isclose(typed, expected, rel_tol=self.tolerance)


def number(
    label: str,
    *index: int,
    part: str = "",
    tolerance: float = 0.0,
    percent: bool = False,
) -> Check:
    """A typed number: the answer `label` (at `index` inside a tuple, named by `part`)."""
    if index and not part:
        raise ValueError("a place inside an answer needs a part name")
    return Check("number", label, index, part, tolerance, percent)


def choice(*options: str, rule: str) -> Check:
    """One of the answers `options` (by label), picked by `rule` from their computed values."""
    if rule not in RULES or len(options) < 2:
        raise ValueError(f"a choice needs two or more options and a rule in {RULES}")
    return Check("choice", options=options, rule=rule)


def parse_number(text: str | float) -> float | None:
    """A number as a person types it, or None when it is not one."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if math.isfinite(text) else None
    if len(text) > MAX_ANSWER_CHARS:
        return None
    cleaned = re.sub(r"[\s,_\u2009\u202f]", "", text).replace("−", "-").rstrip("%×")
    try:
        if match := _POWER.match(cleaned):
            value = float(match[1]) * 10.0 ** int(match[2])
        elif match := _FRACTION.match(cleaned):
            value = float(match[1]) / float(match[2])
        else:
            value = float(cleaned)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None
