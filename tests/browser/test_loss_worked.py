"""/loss writes softmax out with its numbers, the lines the lesson's worked answer shows (from
the server's one formatter), at the temperature chosen; the focal formula names α only when one
is set. English and Korean."""

import pytest
from test_loss_page import LossPage

from app.i18n import catalogue
from app.lesson_answers.layers import softmax_and_cross_entropy

DRAG_TO_1 = "(s) => { s.value = '1'; s.dispatchEvent(new Event('input', { bubbles: true })); }"


def lines(page) -> list[str]:
    return page.locator("#softmax-lines .softmax-line").all_inner_texts()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_softmax_lines_are_the_lessons(page, lang, screenshot):
    loss = LossPage(page).open(f"lang={lang}&logits=2,-1,0.1&target=0")
    assert page.locator("#softmax-worked").is_visible()
    assert lines(page) == list(softmax_and_cross_entropy([2.0, -1.0, 0.1], 0)[0].work)
    assert lines(page)[0] == "e^2 = 7.389 e^−1 = 0.3679 e^0.1 = 1.105"
    heading = catalogue(lang, "loss")["loss.softmax.heading"].replace("{T}", "1")
    assert page.inner_text("#softmax-heading") == heading
    # a dragged logit rewrites them: z₁ = 1 now
    loss.change(lambda: page.eval_on_selector("#score-1", DRAG_TO_1))
    assert lines(page) == list(softmax_and_cross_entropy([2.0, 1.0, 0.1], 0)[0].work)
    screenshot(page, f"loss-softmax-{lang}")


def test_temperature_divides_the_logits_first(page):
    LossPage(page).open("lang=en&logits=2,-1,0.1&temperature=2")
    assert lines(page)[0] == "e^1 = 2.718 e^−0.5 = 0.6065 e^0.05 = 1.051"
    assert "softmax(z / 2)" in page.inner_text("#softmax-heading")


def test_binary_loss_shows_no_softmax(page):
    LossPage(page).open("lang=en&kind=binary_cross_entropy")
    assert page.locator("#softmax-worked").is_hidden()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_focal_formula_names_alpha_only_when_set(page, lang):
    loss = LossPage(page).open(f"lang={lang}&kind=focal")
    formula = page.locator("#loss-formula")
    assert "α" not in formula.inner_text() and "(1 − p_i)^γ" in formula.inner_text()
    loss.change(lambda: page.select_option("#c-alpha", "0.25"))
    assert "α · y_i" in formula.inner_text()
