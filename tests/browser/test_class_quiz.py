"""The live class quiz in one Chromium: a teacher presenting a lesson (English, 1920×1080) and two
students on 360 px phones (Korean and English). The teacher asks a question; the students answer
(one changes their answer, one types something that is not a number first); the teacher's panel
shows the spread live; the teacher reveals; both students see the worked answer and whether they
were right, and the teacher sees how many were."""

import re

from playwright.sync_api import Page, expect

from app.i18n import messages
from app.lessons import question_by_ref

LESSON = "convolution"


def macs() -> tuple[int, str, tuple[str, ...]]:
    """The convolution lesson's first question: the MACs it asks for (324), and the worked
    lines of both parts of its answer (output size, MACs)."""
    _, question = question_by_ref(f"{LESSON}.output")
    answers = question.answers()
    return question.expected(), answers[1].value, tuple(w for a in answers for w in a.work)


def bars(page: Page, root: str) -> list[tuple[str, str, bool]]:
    """(label, count, marked right) of each bar of a spread chart."""
    rows = page.locator(f"{root} .quiz-bar")
    return [
        (row.locator(".quiz-bar-label").text_content(), row.get_attribute("data-count"),
         "is-correct" in (row.get_attribute("class") or ""))
        for row in rows.all()
    ]  # fmt: skip


def answer(student: Page, text: str) -> None:
    student.fill(".quiz-card .quiz-input", text)
    student.click(".quiz-card .quiz-send")


def test_teacher_asks_students_answer_spread_and_reveal(make_page, screenshot):
    exact, shown, work = macs()
    teacher = make_page("projector")
    teacher.goto(f"/lessons/{LESSON}?lang=en&present=1")
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()
    ask = teacher.locator('.question[data-question="output"] .quiz-ask-button')
    expect(ask).to_have_text("Ask the class")
    expect(ask).to_have_attribute("data-question", f"{LESSON}.output")
    expect(teacher.locator(".quiz-ask-button")).to_have_count(2)  # one per question

    korean, english = make_page("phone", locale="ko-KR"), make_page("phone", locale="en-US")
    for student in (korean, english):
        student.goto(f"/join/{code}")
        expect(student.locator(".follow-bar")).to_have_attribute("data-state", "following")
        expect(student.locator(".quiz-card")).to_have_count(0)  # nothing asked yet

    ask.click()
    panel = teacher.locator(".quiz-panel")
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("data-status", "open")
    expect(panel.locator(".quiz-count")).to_have_text("0 of 2 following have answered")
    for student, lang in ((korean, "ko"), (english, "en")):
        card = student.locator(".quiz-card")
        expect(card).to_have_attribute("data-status", "open")
        label = messages(lang, "lessons")["lessons.answer.macs"]
        expect(card.locator(".quiz-input-label")).to_have_text(label)
        expect(card.locator(".quiz-question-text")).to_contain_text("8")  # the lesson's numbers

    # the Korean student first sends a wrong answer, then changes it to the right one
    answer(korean, "300")
    expect(korean.locator(".quiz-sent")).to_contain_text("300")
    expect(panel).to_have_attribute("data-answered", "1")
    assert bars(teacher, ".quiz-panel") == [("300", "1", False)]
    answer(korean, "삼백이십사")  # not a number: said in Korean, nothing sent
    expect(korean.locator(".quiz-card .quiz-error")).to_have_text(
        messages("ko", "common")["quiz.invalid"]
    )
    answer(korean, "3.24×10^2")  # read as the lesson reads numbers: 324
    # the English student types words first, and then something past the last digit: the page
    # says it is not a number in the reader's language and sends nothing (no 422 in the console)
    for text in ("three hundred", "3 2 0 people"):
        answer(english, text)
        expect(english.locator(".quiz-card .quiz-error")).to_have_text(
            "Type a number, for example 324 or 0.417"
        )
        expect(english.locator(".quiz-card .quiz-input")).to_have_attribute("aria-invalid", "true")
    answer(english, "320")
    expect(english.locator(".quiz-card .quiz-input")).to_have_attribute("aria-invalid", "false")
    expect(panel.locator(".quiz-count")).to_have_text("2 of 2 following have answered")
    expect(panel.locator(".quiz-bar")).to_have_count(2)
    assert bars(teacher, ".quiz-panel") == [("320", "1", False), (str(exact), "1", False)]
    screenshot(teacher, "quiz-teacher-spread-1920")
    screenshot(korean, "quiz-student-open-ko-360")

    panel.locator(".quiz-reveal").click()
    expect(panel).to_have_attribute("data-status", "revealed")
    expect(panel.locator(".quiz-count")).to_have_text("1 of 2 answers are right")
    expect(panel.locator(".quiz-worked .work-line")).to_have_text(list(work))
    expect(panel.locator(".quiz-reveal")).to_be_hidden()
    assert bars(teacher, ".quiz-panel") == [("320", "1", False), (str(exact), "1", True)]
    for student, verdict in ((korean, "right"), (english, "wrong")):
        card = student.locator(".quiz-card")
        expect(card).to_have_attribute("data-status", "revealed")
        expect(card).to_have_attribute("data-verdict", verdict)
        expect(card.locator(".quiz-worked-value")).to_contain_text(shown)
        expect(card.locator(".quiz-worked .work-line")).to_have_text(list(work))
        expect(card.locator(".quiz-input")).to_be_disabled()  # answers are closed
        assert bars(student, ".quiz-card") == [("320", "1", False), (str(exact), "1", True)]
    expect(korean.locator(".quiz-verdict")).to_have_text(f"정답입니다 · 내 답: {exact}")
    expect(english.locator(".quiz-verdict")).to_have_text("Not quite: you answered 320")
    screenshot(teacher, "quiz-teacher-revealed-1920")
    screenshot(korean, "quiz-student-revealed-ko-360")
    screenshot(english, "quiz-student-revealed-en-360")
    # a phone at 360 px shows the card without sideways scrolling
    for student in (korean, english):
        assert student.evaluate("document.documentElement.scrollWidth") <= 360

    # closing the question takes it off every screen
    panel.locator(".quiz-close").click()
    expect(panel).to_be_hidden()
    for student in (korean, english):
        expect(student.locator(".quiz-card")).to_have_count(0)
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{6}", code)


def test_a_choice_question_shows_bars_per_option(make_page, screenshot):
    """A question with options (dilation.params): students pick, the teacher's bars are the
    options (in the teacher's language), the reveal marks the right one everywhere."""
    teacher = make_page("projector", locale="ko-KR")
    teacher.goto("/lessons/dilation?lang=ko&present=1")
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()
    student = make_page("phone", locale="en-US")
    student.goto(f"/join/{code}?lang=en")
    expect(student.locator(".follow-bar")).to_have_attribute("data-state", "following")
    teacher.locator('.quiz-ask-button[data-question="dilation.params"]').click()
    _, question = question_by_ref("dilation.params")
    options = question.check.options
    right = question.expected()
    texts = {lang: [messages(lang, "lessons")[f"lesson.dilation.q.params.option.{o}"]
                    for o in options] for lang in ("ko", "en")}  # fmt: skip
    card = student.locator(".quiz-card")
    expect(card.locator(".quiz-choice")).to_have_text(texts["en"])
    wrong = next(i for i, o in enumerate(options) if o != right)
    card.locator(".quiz-choice input").nth(wrong).check()
    card.locator(".quiz-send").click()
    panel = teacher.locator(".quiz-panel")
    expect(panel).to_have_attribute("data-answered", "1")
    assert [label for label, _, _ in bars(teacher, ".quiz-panel")] == texts["ko"]
    panel.locator(".quiz-reveal").click()
    expect(card).to_have_attribute("data-verdict", "wrong")
    marked = [(count, mark) for _, count, mark in bars(student, ".quiz-card")]
    assert marked == [("1" if i == wrong else "0", o == right) for i, o in enumerate(options)]
    screenshot(teacher, "quiz-teacher-choice-ko-1920")


SAMPLES = ["324", " 3 24 ", "61,706", "0.417", ".5", "5.", "-2", "+7", "−3", "5.6×10^-5",
           "5.6x10-5", "2*10^3", "1/4", "-1/8", "1/0", "0/0", "50%", "7×", "1e3", "1E-2", "１２",
           "1_000",
           "three", "", "1.2.3", "1/2/3", "0x10", "inf", "nan", "Infinity", "1e400", "--1", "1-",
           "½", "1" * 70, "3 2 0 people"]  # fmt: skip


def test_the_page_reads_numbers_as_the_server_does(make_page):
    """The quiz card's check before sending (static/js/follow/quiz_student.js) against the
    server's reading of a typed answer (app/lesson_answers/check.py), sample by sample."""
    from app.lesson_answers.check import parse_number

    page = make_page()
    page.goto("/join?lang=en")
    read = page.evaluate(
        """async (samples) => {
          const { readNumber } = await import("/static/js/follow/quiz_student.js");
          return samples.map(readNumber);
        }""",
        SAMPLES,
    )
    expected = [parse_number(text) for text in SAMPLES]
    refused = [r is None for r in read]
    assert refused == [e is None for e in expected], list(zip(SAMPLES, read, strict=True))
    for sample, got, want in zip(SAMPLES, read, expected, strict=True):
        if want is not None:
            assert abs(got - want) <= 1e-12 * max(1.0, abs(want)), sample
