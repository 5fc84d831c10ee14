"""Follow mode on /features: the teacher's own uploaded picture reaches the students (through the
session's picture slot; each student's page computes the maps of it), and a student whose page
cannot have it is told plainly that it shows a sample instead."""

import io

import httpx
import numpy as np
from PIL import Image
from playwright.sync_api import expect

from app.i18n import messages

TEACHER_PICTURE = messages("en", "features")["features.teacher_picture"]


def png_of(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def first_step(page) -> str:
    return page.locator(".step-caption").first.text_content() or ""


def test_the_teachers_own_picture_reaches_a_student(make_page, screenshot):
    teacher = make_page("desktop")
    teacher.goto("/features?lang=en&model=tinyvgg&sample=china")
    expect(teacher.locator(".layer-card").first).to_be_visible(timeout=90_000)
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()

    stripes = np.zeros((80, 120, 3), np.uint8)
    stripes[:, ::8] = 255
    teacher.set_input_files(
        "#c-image",
        files=[{"name": "stripes.png", "mimeType": "image/png", "buffer": png_of(stripes)}],
    )
    expect(teacher.locator(".step-caption").first).to_contain_text("80×120", timeout=60_000)

    student = make_page("phone")
    student.goto(f"/join/{code}")
    expect(student.locator(".follow-bar")).to_have_attribute("data-state", "following")
    expect(student.locator("#upload-name")).to_have_text(f"Using {TEACHER_PICTURE}",
                                                         timeout=30_000)  # fmt: skip
    # the student's page computed the maps of the teacher's picture (80×120, as uploaded)
    expect(student.locator(".step-caption").first).to_contain_text("80×120", timeout=60_000)
    expect(student.locator(".teacher-picture-note")).to_be_hidden()
    screenshot(student, "follow-features-teacher-picture-360")


def test_a_student_is_told_when_the_teachers_picture_is_missing(make_page, live_server):
    with httpx.Client(base_url=live_server, timeout=10) as api:
        created = api.post(
            "/api/sessions",
            json={
                "page": "/features?model=tinyvgg&sample=",
                "state": {"model": "tinyvgg", "sample": ""},
            },
        )
        code = created.json()["code"]
        student = make_page("phone")
        student.goto(f"/join/{code}?lang=en")
        note = student.locator(".teacher-picture-note")
        expect(note).to_be_visible(timeout=30_000)
        expect(note).to_have_text(messages("en", "features")["features.teacher_picture_missing"])
        expect(student.locator(".layer-card").first).to_be_visible(timeout=90_000)
