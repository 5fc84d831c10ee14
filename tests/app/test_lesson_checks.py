"""Lesson questions a student answers: each question's expected number or option is read from the
answer cnncore computed (tests/app/test_lessons.py checks those against torch), typed numbers are
read as people write them, and the question API serves both languages for a class quiz."""

import math
import re

import pytest
from fastapi.testclient import TestClient

from app.i18n import LANGUAGES, catalogue
from app.lesson_answers.check import choice, number, parse_number
from app.lessons import LESSONS, question_by_ref
from app.main import app

client = TestClient(app)
REFS = [f"{lesson.slug}.{q.id}" for lesson in LESSONS for q in lesson.questions]


def check(ref: str, answer) -> dict:
    response = client.post(f"/api/questions/{ref}/check", json={"answer": answer})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("61,706", 61706.0),
        ("61 706", 61706.0),
        ("  324 ", 324.0),
        ("0.417", 0.417),
        ("−0.341", -0.341),
        ("5.6e-5", 5.6e-5),
        ("5.6×10^-5", 5.6e-5),
        ("5.6×10-5", 5.6e-5),
        ("1/4", 0.25),
        ("25%", 25.0),
        ("21.7×", 21.7),
        (7, 7.0),
        (0.5, 0.5),
    ],
)
def test_numbers_are_read_as_people_type_them(typed, value):
    assert parse_number(typed) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    "typed", ["", "abc", "1/0", "nan", "inf", "1e999", "1.2.3", "x" * 41, True]
)
def test_what_is_not_a_number_is_not_read_as_one(typed):
    assert parse_number(typed) is None


def test_every_question_has_a_check_whose_answer_is_the_computed_one():
    for lesson in LESSONS:
        for question in lesson.questions:
            answers = {a.label: a.exact for a in question.answers()}
            expected, c = question.expected(), question.check
            if c.kind == "choice":
                values = [answers[option] for option in c.options]
                assert expected in c.options and len(set(values)) == len(values)
                continue
            value = answers[c.label]
            for at in c.index:
                value = value[at]
            assert expected == (100 * value if c.percent else value)
            assert c.tolerance == 0 or not float(expected).is_integer(), question.id
            assert question.is_correct(expected) and question.is_correct(str(expected))


def test_choice_rules_pick_from_the_computed_values():
    dilated, large = question_by_ref("dilation.params")[1].answers()
    assert dilated.exact == 64 * 64 * 9 + 64 and large.exact == 64 * 64 * 25 + 64
    assert question_by_ref("dilation.params")[1].expected() == "params_dilated"
    measured = {a.label: a.exact for a in question_by_ref("activations.measured")[1].answers()}
    assert measured["ratio_sigmoid"] < 1e-3 < 0.5 < measured["ratio_relu"] < 2
    assert question_by_ref("activations.measured")[1].expected() == "ratio_relu"
    assert question_by_ref("softmax-loss.focal")[1].expected() == "ce_over_focal_easy"
    assert question_by_ref("receptive-field.stack")[1].expected() == "params_stack"


def test_checks_are_declared_completely():
    with pytest.raises(ValueError):
        number("output_size", 0)  # a place inside an answer needs its name
    with pytest.raises(ValueError):
        choice("a", rule="smallest")
    with pytest.raises(ValueError):
        choice("a", "b", rule="median")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_check_text_exists_in_both_languages(lang):
    msgs = {**catalogue(lang, "common"), **catalogue(lang, "lessons")}
    for lesson in LESSONS:
        for question in lesson.questions:
            c, key = question.check, f"lesson.{lesson.key}.q.{question.id}"
            if c.kind == "choice":
                assert msgs[f"{key}.choice"]
                for option in c.options:
                    assert msgs[f"{key}.option.{option}"]
            else:
                assert msgs[f"lessons.answer.{c.label}"]
                assert not c.part or msgs[f"lessons.part.{c.part}"]


def test_exact_counts_accept_only_the_count():
    assert check("classic-cnns.lenet", "61,706") == {"correct": True, "understood": True}
    assert check("classic-cnns.lenet", 61706) == {"correct": True, "understood": True}
    assert check("classic-cnns.lenet", "61,707") == {"correct": False, "understood": True}
    assert check("classic-cnns.lenet", "sixty") == {"correct": False, "understood": False}
    assert check("convolution.output", "324")["correct"]  # MACs: 6·6·3·3
    assert check("padding-stride.alexnet", "55")["correct"]  # (227 − 11)/4 + 1
    assert check("pooling.values", "9")["correct"] and not check("pooling.values", "8")["correct"]


def test_real_values_accept_the_shown_rounding_within_the_tolerance():
    loss = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0.1)))
    assert check("softmax-loss.softmax", f"{loss:.3f}")["correct"]
    assert check("softmax-loss.softmax", f"{loss * 1.009:.6f}")["correct"]
    assert not check("softmax-loss.softmax", f"{loss * 1.02:.6f}")["correct"]
    assert check("pooling.shape", "25")["correct"] and check("pooling.shape", "25%")["correct"]
    assert not check("pooling.shape", "0.25")["correct"]  # the share is asked in percent
    assert check("training.schedule", "1e-3")["correct"]  # 0.1 · 0.1² after two decays


def test_choices_accept_only_their_option_ids():
    assert check("dilation.params", "params_dilated") == {"correct": True, "understood": True}
    assert check("dilation.params", "params_large") == {"correct": False, "understood": True}
    assert check("dilation.params", "dilated") == {"correct": False, "understood": False}
    assert check("activations.measured", 1) == {"correct": False, "understood": False}


def test_bad_answers_and_unknown_questions_are_refused_with_the_field_named():
    too_long = client.post("/api/questions/convolution.dot/check", json={"answer": "1" * 41})
    assert too_long.status_code == 422 and "answer" in too_long.json()["detail"][0]["loc"]
    missing = client.post("/api/questions/convolution.dot/check", json={})
    assert missing.status_code == 422 and "answer" in missing.json()["detail"][0]["loc"]
    for ref in ("convolution", "nope.dot", "convolution.nope", "../convolution.dot"):
        assert client.get(f"/api/questions/{ref}").status_code == 404
        assert client.post(f"/api/questions/{ref}/check", json={"answer": 1}).status_code == 404


def test_the_question_api_serves_every_question_in_both_languages():
    listed = client.get("/api/questions").json()
    assert [q["id"] for q in listed] == REFS
    one = client.get("/api/questions/dilation.params").json()
    assert one == next(q for q in listed if q["id"] == "dilation.params")
    assert one["kind"] == "choice" and one["expected"] == "params_dilated"
    assert one["option_ids"] == ["params_dilated", "params_large"]
    assert set(one["text"]) == set(LANGUAGES)
    ko, en = one["text"]["ko"], one["text"]["en"]
    assert ko["check"]["ask"] == catalogue("ko", "lessons")["lesson.dilation.q.params.choice"]
    assert en["check"]["options"][0] == {
        "id": "params_dilated",
        "text": catalogue("en", "lessons")["lesson.dilation.q.params.option.params_dilated"],
    }
    # the worked answer is the same computation in both languages
    assert [a["value"] for a in ko["answers"]] == [a["value"] for a in en["answers"]]
    assert ko["answers"][0]["work"] == en["answers"][0]["work"] and ko["why"] != en["why"]
    lenet = client.get("/api/questions/classic-cnns.lenet").json()
    assert lenet["kind"] == "number" and lenet["expected"] == 61706 and lenet["tolerance"] == 0
    assert lenet["text"]["en"]["check"]["ask"] == "Parameters"


def test_worked_answers_use_the_formulas_the_lessons_teach():
    """The output size and parameter count are written with the lesson's own formula, not the
    explorer's general PyTorch form (p_before + p_after − d·(k − 1) − 1, C_in/groups)."""
    en = catalogue("en", "lessons")
    size_formula, params_formula = "⌊(n + 2p − k) / s⌋ + 1", "O·(k·k·C + 1)"
    assert size_formula in en["lesson.padding_stride.p3"]
    assert params_formula in en["lesson.channels_params.p1"]
    assert "d·(k − 1) + 1" in en["lesson.dilation.p2"]
    lines = {
        (lesson.slug, q.id, a.label): a.work
        for lesson in LESSONS
        for q in lesson.questions
        for a in q.answers()
    }
    assert lines[("padding-stride", "alexnet", "output_size")][0] == (
        f"H_out = {size_formula} = ⌊(227 + 2·0 − 11) / 4⌋ + 1 = 55"
    )
    assert lines[("channels-params", "conv", "params")] == (
        f"params = {params_formula} = 16·(3·3·3 + 1) = 448",
    )
    assert lines[("dilation", "output", "output_size")][:2] == (
        "k' = d·(k − 1) + 1 = 2·(3 − 1) + 1 = 5",
        "H_out = ⌊(n + 2p − k') / s⌋ + 1 = ⌊(9 + 2·0 − 5) / 1⌋ + 1 = 5",
    )
    for work in lines.values():
        assert not any("/1)" in line for line in work), work  # no C_in/groups


# What each checked number is called, in the question text and in the label beside the answer box:
# (answer label, part) → the words naming it, per language.
ASKED_AS = {
    ("params", ""): {"en": ("parameters",), "ko": ("매개변수",)},
    ("output_size", "height"): {"en": ("height",), "ko": ("높이",)},
    ("macs", ""): {"en": ("MACs",), "ko": ("MAC",)},
    ("value", ""): {"en": ("value",), "ko": ("값",)},
    ("output_row", "second"): {"en": ("first", "second"), "ko": ("첫 행", "두 번째")},
    ("padding_dilated", "each_side"): {"en": ("dilat", "each side"), "ko": ("팽창", "한쪽")},
    ("receptive_field", ""): {"en": ("receptive field",), "ko": ("수용 영역",)},
    ("params_dense", ""): {
        "en": ("parameters", "fully connected"),
        "ko": ("매개변수", "완전 연결"),
    },
    ("values_kept", ""): {"en": ("share",), "ko": ("비율",)},
    ("max_pool", "bottom_right"): {
        "en": ("max pooling", "bottom right"),
        "ko": ("최대 풀링", "오른쪽 아래"),
    },
    ("max_slope", ""): {"en": ("largest",), "ko": ("최댓값",)},
    ("loss", ""): {"en": ("cross-entropy loss",), "ko": ("교차 엔트로피 손실",)},
    ("share", ""): {"en": ("share", "parameters"), "ko": ("비율", "매개변수")},
    ("macs_ratio", ""): {"en": ("MACs",), "ko": ("연산",)},
    ("cost_ratio", ""): {"en": ("factorised ÷ standard",), "ko": ("분해 ÷ 일반",)},
    ("params_added", ""): {"en": ("parameters",), "ko": ("매개변수",)},
    ("lr_step", ""): {"en": ("learning rate", "step decay"), "ko": ("학습률", "계단식 감소")},
    ("params_trainable", ""): {"en": ("trainable", "parameters"), "ko": ("학습되는 매개변수",)},
}
# A question sentence that asks for more than one thing ("What are the size and the parameters?",
# "How many …, and what share …?", "…는 얼마이고, …", "각각 무엇일까요?").
SECOND_ASK = {
    "en": re.compile(r"\b(and|what are)\b|, compared"),
    "ko": re.compile(r"(이고|하고|있고|있으며),|[와과] \S+ 수는|각각"),
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_question_asks_for_the_one_thing_its_answer_box_checks(lang):
    """A question asks one thing (other quantities only as steps to work out first), ending in its
    only question mark; it names the checked quantity with the words its answer label uses."""
    msgs = {**catalogue(lang, "common"), **catalogue(lang, "lessons")}
    for lesson in LESSONS:
        for question in lesson.questions:
            c, key = question.check, f"lesson.{lesson.key}.q.{question.id}"
            if c.kind == "choice":
                ask, text = msgs[f"{key}.choice"], msgs[f"{key}.choice"]
                words: tuple[str, ...] = ()
            else:
                text = msgs[key]
                ask = msgs[f"lessons.answer.{c.label}"]
                ask += f" · {msgs[f'lessons.part.{c.part}']}" if c.part else ""
                words = ASKED_AS[(c.label, c.part)][lang]
            assert text.endswith("?") and text.count("?") == 1, (key, text)
            asked = re.split(r"(?<=[.:])\s+", text)[-1]
            assert not SECOND_ASK[lang].search(asked), (key, asked)
            for word in words:
                assert word.lower() in text.lower(), (key, word, text)
                assert word.lower() in ask.lower(), (key, word, ask)
