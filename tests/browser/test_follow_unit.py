"""Follow mode carries a unit's computation: the teacher, presenting at 1920×1080, opens a unit on
/features and walks back one step; a student following on a 360×740 phone sees the same unit
(the same values, the same breadcrumb, the same numbers written out), readable and without
sideways scrolling, in Korean and in English. The unit path travels in the session's state as
a list of records ({layer, channel, y, x}); the session once refused it (422), so no unit the
teacher opened ever reached the class."""

import re
from urllib.parse import unquote

import pytest
from playwright.sync_api import expect

READY = "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"
NUMBER = re.compile(r"[-−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def unit_shown(page) -> dict:
    """What the unit panel shows: the unit's values, its breadcrumb, the written-out numbers."""
    return page.evaluate(
        """() => {
        const facts = document.getElementById('unit-facts');
        return {value: facts.dataset.value, total: facts.dataset.total,
                crumbs: [...document.querySelectorAll('#unit-crumbs li')]
                    .map((li) => li.textContent.trim()),
                math: document.getElementById('unit-math').textContent};
    }"""
    )


def numbers(text: str) -> list[str]:
    return [n.replace("−", "-") for n in NUMBER.findall(text)]


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_unit_the_teacher_opens_reaches_a_students_phone(make_page, screenshot, lang):
    teacher = make_page("projector")
    teacher.goto("/features?lang=en&model=lenet5&sample=digit&layer=features.3&channel=2"
                 "&present=1")  # fmt: skip
    teacher.wait_for_selector(".layer-card", timeout=90_000)
    teacher.wait_for_function(READY, timeout=90_000)
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()
    student = make_page("phone", locale="ko-KR" if lang == "ko" else "en-US")
    student.set_viewport_size({"width": 360, "height": 740})
    student.goto(f"/join/{code}?lang={lang}")
    expect(student.locator(".follow-bar")).to_have_attribute("data-state", "following")
    student.wait_for_function(READY, timeout=90_000)

    # the teacher opens unit (4, 5) of channel 2 of features.3, then walks back one step
    teacher.wait_for_function(
        "() => document.getElementById('detail-heading').textContent.includes('features.3')"
    )
    canvas = teacher.locator("#channel-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # features.3 maps are 10×10
    teacher.mouse.click(box["x"] + 5.5 * box["width"] / 10, box["y"] + 4.5 * box["height"] / 10)
    teacher.wait_for_function("() => !document.getElementById('unit-panel').hidden")
    teacher.locator("#unit-math .unit-walk").first.click()
    teacher.wait_for_function("() => document.querySelectorAll('#unit-crumbs li').length === 2")
    teacher.wait_for_function(
        "() => decodeURIComponent(location.search).split('~').length === 2"
    )  # the walk is in the teacher's URL, and so in what the session sends
    shown = unit_shown(teacher)
    assert shown["crumbs"][0] == "features.3 [2] (4, 5)", shown

    # the student's page opens the same unit, walked the same way
    student.wait_for_function(
        "n => document.querySelectorAll('#unit-crumbs li').length === n", arg=2, timeout=60_000
    )
    student.wait_for_function(
        "v => document.getElementById('unit-facts').dataset.value === v",
        arg=shown["value"],
        timeout=60_000,
    )
    seen = unit_shown(student)
    assert (seen["value"], seen["total"], seen["crumbs"]) == (
        shown["value"], shown["total"], shown["crumbs"]
    )  # fmt: skip
    assert numbers(seen["math"]) == numbers(shown["math"]) and numbers(seen["math"])
    if lang == "en":
        assert seen["math"] == shown["math"]
    assert "unit=features.3:2:4:5~features.2:" in unquote(student.url)

    # it fits the phone: no sideways scrolling, the panel and its arithmetic within 360 px,
    # text no smaller than 12 px
    fits = student.evaluate(
        """() => {
        const panel = document.getElementById('unit-panel').getBoundingClientRect();
        const math = document.getElementById('unit-math');
        const sizes = [...document.querySelectorAll('#unit-panel *')]
            .filter((node) => node.childNodes.length && [...node.childNodes]
                .some((c) => c.nodeType === 3 && c.textContent.trim()))
            .map((node) => parseFloat(getComputedStyle(node).fontSize));
        return {page: document.documentElement.scrollWidth, left: panel.left, right: panel.right,
                mathScroll: math.scrollWidth, mathClient: math.clientWidth,
                smallest: Math.min(...sizes)};
    }"""
    )
    assert fits["page"] <= 360, fits
    assert fits["left"] >= 0 and fits["right"] <= 360, fits
    assert fits["mathScroll"] <= fits["mathClient"] + 1, fits
    assert fits["smallest"] >= 12, fits
    # scrolled to as the page scrolls what it opens: below the follow bar, not under it
    student.evaluate("document.getElementById('unit-panel').scrollIntoView({block: 'start'})")
    below = student.evaluate(
        """() => document.getElementById('unit-panel').getBoundingClientRect().top
                 - document.querySelector('.follow-bar').getBoundingClientRect().bottom"""
    )
    assert below >= 0, below
    screenshot(teacher, "follow-unit-teacher-1920")
    screenshot(student, f"follow-unit-student-360-{lang}", full_page=False)
