"""A mirrored /teach (a student's phone following the teacher's page, or a second window on the
teacher's dataset) shows the dataset as it is now: the dataset the teacher makes after the
student joined, and once the teacher takes a student's picture into it, the mirror's class
counts and thumbnails, without a reload, in both languages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_class_pictures_page import picture, stores  # noqa: F401  (stores: its stores, autouse)

from app.i18n import messages


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_mirror_shows_a_picture_the_teacher_accepted(make_page, screenshot, lang):
    text = messages(lang, "common", "teach")
    locale = {"ko": "ko-KR", "en": "en-US"}[lang]
    teacher = make_page("laptop", locale=locale)
    teacher.goto(f"/teach?lang={lang}")
    teacher.wait_for_selector("body[data-ready=true]")
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()
    # the student follows before the dataset exists: it reaches the open page as a state change
    phone = make_page("phone", locale=locale)
    phone.goto(f"/join/{code}")
    phone.wait_for_selector("body[data-ready=true]")
    teacher.fill("#dataset-name", "pets")
    teacher.fill("#class-names", "cats, dogs")
    teacher.click("#create")
    teacher.locator("#class-open").click()
    expect(teacher.locator("#class-card")).to_have_attribute("data-linked", "true")
    layout = phone.locator(".teach-layout")
    expect(layout).to_have_attribute("data-pictures", "0")  # the teacher's dataset, mirrored
    counts = phone.locator("#classes h3")
    none = text["teach.browse.count"].replace("{n}", "0")
    expect(counts).to_have_text([f"cats · {none}", f"dogs · {none}"])
    student = phone.locator(".class-pictures-card")
    student.locator("[name=name]").fill("Mina")
    student.get_by_label("dogs").check()
    student.locator(".class-pictures-file").set_input_files(picture(7))
    student.locator(".class-pictures-send").click()
    expect(student.locator(".class-pictures-status")).to_have_text(text["class_pictures.sent"])

    teacher.locator("#class-pending li .class-accept").click()
    expect(teacher.locator(".teach-layout")).to_have_attribute("data-pictures", "1")
    # the mirror follows: its counts, its thumbnail, its class choice
    expect(layout).to_have_attribute("data-pictures", "1")
    one = text["teach.browse.count"].replace("{n}", "1")
    expect(counts).to_have_text([f"cats · {none}", f"dogs · {one}"])
    thumb = phone.locator("#classes .class-row").nth(1).locator(".thumbs img")
    expect(thumb).to_have_count(1)
    expect(thumb).to_have_js_property("complete", True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, f"teach-mirror-accepted-{lang}-360")
    screenshot(teacher, f"teach-mirror-teacher-{lang}-1366", full_page=False)
