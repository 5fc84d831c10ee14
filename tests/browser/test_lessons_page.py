"""Lessons in a real browser: reveal a worked answer and check its numbers against torch, switch
the language, drive the lesson and its framed explorer with the keyboard, keep progress, and
screenshot every lesson in both languages on a phone and on a projector (presenter mode).
Every page is guarded: no request outside the server, no console error."""

import re

import pytest
import torch
from playwright.sync_api import expect
from torch import nn

from app.i18n import catalogue
from app.lessons import LESSONS
from app.routes.pages import PAGES
from cnncore.model_options import build_classifier

FOLLOW_TIMEOUT = 10_000  # ms: two pages and a live class session on a busy machine
FRAME_READY = """() => {
  const frame = document.getElementById('explorer-frame');
  const doc = frame && frame.contentDocument;
  return Boolean(doc && doc.body && doc.body.dataset.ready === 'true');
}"""


def open_lesson(page, slug: str, query: str = "lang=en"):
    page.goto(f"/lessons/{slug}?{query}")
    page.wait_for_selector("body[data-ready=true]")
    if page.locator("#explorer-frame").count():
        page.wait_for_function(FRAME_READY)
    return page


def explorer(page):
    return page.frame_locator("#explorer-frame")


def test_revealed_answer_is_torchs_number(page):
    open_lesson(page, "padding-stride")
    question = page.locator("#q-cs231n")
    assert "32×32×3" in question.locator(".question-text").inner_text()
    values = question.locator(".answer-value")
    assert not values.first.is_visible()
    question.locator("summary").click()
    assert values.first.is_visible()

    layer = nn.Conv2d(3, 10, kernel_size=5, stride=1, padding=2)
    out = layer(torch.zeros(1, 3, 32, 32))
    params = sum(p.numel() for p in layer.parameters())
    shown = dict(
        zip(
            question.locator(".answer-part").evaluate_all(
                "parts => parts.map(p => p.dataset.answer)"
            ),
            values.all_inner_texts(),
            strict=True,
        )
    )
    assert shown["output_size"] == f"{out.shape[2]}×{out.shape[3]}×{out.shape[1]}"
    assert shown["params"] == f"{params:,}"
    assert f"= {params}" in question.locator(".work-line").all_inner_texts()[-1]


def test_language_switch_changes_the_strings_not_the_numbers(page):
    open_lesson(page, "pooling")
    english = catalogue("en", "lessons")
    assert page.inner_text("h1") == catalogue("en", "common")["lesson.pooling"]
    assert page.locator("#q-values summary").inner_text() == english["lessons.show_answer"]
    value_en = page.locator("#q-values .answer-value").first.text_content()

    page.click("[data-lang-link=ko]")
    page.wait_for_url("**lang=ko**")
    page.wait_for_selector("body[data-ready=true]")
    korean = catalogue("ko", "lessons")
    assert page.get_attribute("html", "lang") == "ko"
    assert page.inner_text("h1") == catalogue("ko", "common")["lesson.pooling"]
    assert page.locator("#q-values summary").inner_text() == korean["lessons.show_answer"]
    assert page.locator("#q-values .answer-value").first.text_content() == value_en
    page.wait_for_function(FRAME_READY)
    assert explorer(page).locator("html").get_attribute("lang") == "ko"


def test_the_framed_explorer_opens_in_the_lessons_state_without_chrome(page):
    open_lesson(page, "padding-stride")
    frame = explorer(page)
    assert frame.locator("#c-stride").input_value() == "2"
    assert frame.locator("#c-padding").input_value() == "1"
    assert frame.locator("#c-size").input_value() == "7"
    assert not frame.locator(".site-header").is_visible()
    assert frame.locator("#follow-start").count() == 0  # the lesson page runs follow mode
    # the frame is as tall as the explorer it shows, up to two screens (then it scrolls inside)
    frame_height, content, screen = page.evaluate("""() => {
      const frame = document.getElementById('explorer-frame');
      return [frame.clientHeight, frame.contentDocument.body.getBoundingClientRect().height,
              window.innerHeight];
    }""")
    assert abs(frame_height - min(content, max(2 * screen, 900))) <= 3 and frame_height > 300


def test_keys_move_between_lessons_and_step_the_explorer_inside_the_frame(page):
    open_lesson(page, "padding-stride")
    # inside the frame, → steps the explorer's player and the lesson stays
    frame = explorer(page)
    frame.locator(".player-next").click()
    before = frame.locator(".player-position").inner_text()
    frame.locator("body").press("ArrowRight")
    assert frame.locator(".player-position").inner_text() != before
    assert page.url.split("?")[0].endswith("/lessons/padding-stride")
    # P inside the frame is handed to the lesson: both present
    frame.locator("body").press("p")
    page.wait_for_function("document.documentElement.classList.contains('presenter')")
    page.wait_for_function("""() => document.getElementById('explorer-frame')
      .contentDocument.documentElement.classList.contains('presenter')""")
    # on the lesson page itself, → and Page Up go to the next / previous lesson, presenting
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/lessons/dilation?**")
    assert "present=1" in page.url
    page.wait_for_selector("body[data-ready=true]")
    page.keyboard.press("PageUp")
    page.wait_for_url("**/lessons/padding-stride?**")
    page.wait_for_selector("body[data-ready=true]")
    page.keyboard.press("p")
    page.wait_for_function("!document.documentElement.classList.contains('presenter')")
    page.wait_for_function(FRAME_READY)
    page.wait_for_function("""() => !document.getElementById('explorer-frame')
      .contentDocument.documentElement.classList.contains('presenter')""")


def test_progress_is_kept_and_shown(page):
    open_lesson(page, "dilation")
    button = page.locator("#lesson-done")
    assert button.get_attribute("aria-pressed") == "false"
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    open_lesson(page, "pooling")
    page.goto("/lessons?lang=en")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator('[data-lesson="dilation"] [data-mark="done"]').is_visible()
    assert page.locator('[data-lesson="pooling"] [data-mark="visited"]').is_visible()
    assert not page.locator('[data-lesson="pooling"] [data-mark="done"]').is_visible()
    assert not page.locator('[data-lesson="training"] .lesson-mark').first.is_visible()
    assert f"1 of {len(LESSONS)}" in page.inner_text("#lessons-progress")
    page.click(".lessons-continue")
    page.wait_for_url("**/lessons/convolution?**")
    page.goto("/?lang=en")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator('.home-lessons [data-lesson="dilation"] [data-mark="done"]').is_visible()


def test_unknown_lesson_is_a_page_with_the_path(page):
    response = page.goto("/lessons/no-such-lesson?lang=ko")
    assert response.status == 404
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("h1") == catalogue("ko", "lessons")["lessons.missing"]
    assert page.locator(".lesson-card").count() == len(LESSONS)
    page.guard.expect_errors("status of 404", 1)  # the page's own status, logged by Chromium


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_every_lesson_on_a_phone(make_page, screenshot, lang):
    phone = make_page("phone")
    for lesson in LESSONS:
        open_lesson(phone, lesson.slug, f"lang={lang}")
        phone.wait_for_load_state("networkidle")  # heavy explorers: one request per client
        for details in phone.locator("details.answer").all():
            details.locator("summary").click()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{lesson.slug} ({lang}) scrolls sideways on a phone: {width}px"
        screenshot(phone, f"lesson-{lesson.slug}-{lang}-phone")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_every_lesson_on_a_projector_presenting(make_page, screenshot, lang):
    projector = make_page("projector")
    for lesson in LESSONS:
        open_lesson(projector, lesson.slug, f"lang={lang}&present=1")
        projector.wait_for_load_state("networkidle")
        assert projector.evaluate("document.documentElement.classList.contains('presenter')")
        assert not projector.locator(".site-nav").is_visible()
        projector.locator("details.answer summary").first.click()
        if lesson.explorer.path in PAGES:
            assert explorer(projector).locator("html.presenter").count() == 1
        screenshot(projector, f"lesson-{lesson.slug}-{lang}-projector")


def test_followers_mirror_the_lesson_its_answers_and_its_explorer(make_page):
    teacher = open_lesson(make_page("desktop"), "convolution")
    teacher.click("#follow-start")
    dialog = teacher.locator(".follow-dialog")
    code = dialog.locator(".follow-code").inner_text()
    dialog.locator(".follow-close").click()

    student = make_page("phone", locale="ko-KR")
    student.goto(f"/join/{code}")
    expect(student).to_have_url(
        re.compile(rf"/lessons/convolution\?.*follow={code}"), timeout=FOLLOW_TIMEOUT
    )
    student.wait_for_selector("body[data-ready=true]")
    student.wait_for_function(FRAME_READY)
    expect(student.locator(".follow-bar")).to_have_attribute(
        "data-state", "following", timeout=FOLLOW_TIMEOUT
    )
    assert explorer(student).locator("#follow-start").count() == 0

    # the teacher steps and reconfigures the framed explorer: the student's frame follows
    frame = explorer(teacher)
    for _ in range(3):
        frame.locator(".player-next").click()
    expect(explorer(student).locator(".player-position")).to_have_text(
        frame.locator(".player-position").inner_text(), timeout=FOLLOW_TIMEOUT
    )
    before = frame.locator(".player-position").inner_text()
    frame.locator("#c-stride").fill("2")
    frame.locator("#c-stride").press("Tab")
    expect(explorer(student).locator("#c-stride")).to_have_value("2", timeout=FOLLOW_TIMEOUT)
    # the teacher's own frame must hold the new (shorter) trace before its last step is read
    expect(frame.locator(".player-position")).not_to_have_text(before, timeout=FOLLOW_TIMEOUT)
    frame.locator(".player-last").click()
    expect(explorer(student).locator(".player-position")).to_have_text(
        frame.locator(".player-position").inner_text(), timeout=FOLLOW_TIMEOUT
    )

    # the teacher reveals an answer, then moves on to the next lesson
    teacher.locator("#q-output summary").click()
    expect(student.locator("#q-output details")).to_have_attribute(
        "open", "", timeout=FOLLOW_TIMEOUT
    )
    teacher.locator("h1").click()
    teacher.keyboard.press("ArrowRight")
    expect(student).to_have_url(re.compile(r"/lessons/edge-filters\?"), timeout=FOLLOW_TIMEOUT)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_question_answered_wrong_then_right_opens_the_worked_answer(page, lang):
    msgs = {**catalogue(lang, "common"), **catalogue(lang, "lessons")}
    open_lesson(page, "classic-cnns", f"lang={lang}")
    question = page.locator("#q-lenet")
    field, result = question.locator("input[name=answer]"), question.locator(".check-result")
    details = question.locator("details.answer")
    params = sum(p.numel() for p in build_classifier("lenet5", (1, 32, 32), 10).parameters())
    field.fill("")
    question.get_by_role("button").click()
    expect(result).to_have_text(msgs["lessons.not_a_number"])
    field.fill(f"{params + 1:,}")
    question.get_by_role("button").click()
    expect(result).to_have_text(msgs["lessons.wrong"])
    assert not details.evaluate("d => d.open")
    field.fill(f"{params:,}")
    field.press("Enter")
    expect(result).to_have_text(msgs["lessons.correct"].replace("{value}", f"{params:,}"))
    expect(details).to_have_attribute("open", "")
    assert question.locator(".answer-value").first.inner_text() == f"{params:,}"
    # the opened answer is in the lesson's URL state (written throttled: wait for it)
    page.wait_for_url(re.compile(r"open=lenet"))

    # a choice: the option cnncore's numbers make right (fewer parameters: the dilated kernel)
    open_lesson(page, "dilation", f"lang={lang}")
    choice = page.locator("#q-params")
    key = "lesson.dilation.q.params.option."
    choice.get_by_label(msgs[key + "params_large"]).check()
    choice.get_by_role("button").click()
    expect(choice.locator(".check-result")).to_have_text(msgs["lessons.wrong"])
    choice.get_by_label(msgs[key + "params_dilated"]).check()
    choice.get_by_role("button").click()
    expect(choice.locator(".check-result")).to_have_class(re.compile("is-correct"))
    dilated = nn.Conv2d(64, 64, 3, dilation=2)
    large = nn.Conv2d(64, 64, 5)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(dilated) < count(large)
    assert f"{count(dilated):,}" in choice.locator(".answer-value").all_inner_texts()
