# ruff: noqa: F811  (pytest fixtures imported from test_sessions_routes, used as arguments)
"""The live class quiz over a live server: the teacher asks a lesson's question, students answer
(one answer each, changeable until the reveal), the teacher reads the spread, reveals the worked
answer (which every follower receives in the stream), and closes the question."""

import json

import pytest

# the live server and its fixtures are those of the route tests
from test_sessions_routes import base_url, client, server, sse_events, start  # noqa: F401

from app.lessons import question_by_ref
from app.quiz import QuizRefused, count_answers, quiz_question, valid_answer

MACS = {"question": "convolution.output"}  # its check: the MACs, a count (exact)


def expected(ref: str) -> float | int | str:
    return question_by_ref(ref)[1].expected()


def ask(client, code, token, **body):
    return client.post(
        f"/api/sessions/{code}/quiz", json={**MACS, **body}, headers={"X-Teacher-Token": token}
    )


def answer(client, code, quiz_id, student, value):
    return client.put(
        f"/api/sessions/{code}/quiz/{quiz_id}/answers/{student}", json={"value": value}
    )


def tally(client, code, token) -> dict:
    response = client.get(f"/api/sessions/{code}/quiz", headers={"X-Teacher-Token": token})
    assert response.status_code == 200, response.text
    return response.json()


def test_question_is_built_from_the_lesson_in_both_languages():
    question = quiz_question("convolution.output")
    public, worked = json.loads(question.public), json.loads(question.worked)
    assert question.kind == "number" and worked["expected"] == expected("convolution.output")
    assert set(public["texts"]) == {"ko", "en"}
    assert public["texts"]["en"]["ask"] == "Multiply–accumulates (MACs)"
    assert public["texts"]["ko"]["text"] != public["texts"]["en"]["text"]
    parts = worked["parts"]["en"]
    assert [p["label"] for p in parts] == ["Output size (H×W×C)", "Multiply–accumulates (MACs)"]
    assert parts[1]["value"] == "324" and parts[1]["work"][0].endswith("= 324")
    assert "expected" not in public and "324" not in json.dumps(public)


def test_a_choice_is_stored_as_its_index_and_checked_by_the_lesson_rule():
    question = quiz_question("dilation.params")
    right = expected("dilation.params")
    assert question.kind == "choice" and right in question.options
    assert valid_answer(question, right) == question.options.index(right)
    assert [right_ for _, _, right_ in count_answers(question, [0, 0, 1])] == [
        int(option == right) for option in question.options
    ]
    assert count_answers(question, [1, 1])[1][1] == 2
    for bad in ("nope", 5, -1, 1.0, True):
        with pytest.raises(QuizRefused):
            valid_answer(question, bad)


def test_unaskable_questions_are_refused_naming_the_field():
    for ref in ("nope.output", "convolution.nope", "convolution"):
        with pytest.raises(QuizRefused) as refused:
            quiz_question(ref)
        assert refused.value.field == "question"


def test_answers_are_checked_as_the_lesson_checks_them():
    share = quiz_question("classic-cnns.vgg")  # a share in percent, 1 % tolerance
    right = expected("classic-cnns.vgg")
    assert share.is_correct(round(right, 1)) and not share.is_correct(right * 1.05)
    macs = quiz_question("convolution.output")  # a count: exact
    assert macs.is_correct(valid_answer(macs, 324.0)) and not macs.is_correct(325)
    assert count_answers(macs, [325, 324, 324, 1.5]) == [[1.5, 1, 0], [324, 2, 1], [325, 1, 0]]
    assert valid_answer(macs, "3.24×10^2") == 324 and valid_answer(macs, "0.5") == 0.5
    for bad in (True, "three", float("inf"), 1e16, None):
        with pytest.raises(QuizRefused):
            valid_answer(macs, bad)


def test_ask_answer_tally_reveal_close(client):
    code, token = start(client)
    other_code, other_token = start(client)
    with client.stream("GET", f"/api/sessions/{code}/events") as stream:
        events = sse_events(stream.iter_lines())
        assert json.loads(next(events)["data"])["quiz"] is None
        asked = ask(client, code, token)
        assert asked.status_code == 201, asked.text
        quiz_id = asked.json()["quiz_id"]
        quiz = json.loads(next(events)["data"])["quiz"]
        assert (quiz["id"], quiz["status"], quiz["question"]["id"]) == (
            quiz_id,
            "open",
            "convolution.output",
        )
        assert "worked" not in quiz  # the answer stays hidden until the reveal

        right = expected(MACS["question"])
        for student, value in (
            ("student-aaaa", 100),
            ("student-bbbb", right),
            ("student-cccc", right),
            ("student-aaaa", right + 1),
        ):
            assert answer(client, code, quiz_id, student, value).status_code == 200
        counted = tally(client, code, token)["quiz"]
        assert counted == {
            "quiz_id": quiz_id,
            "kind": "number",
            "status": "open",
            "answered": 3,
            "spread": [[right, 2, 1], [right + 1, 1, 0]],
            "correct": 2,
        }

        revealed = client.post(
            f"/api/sessions/{code}/quiz/{quiz_id}/reveal", headers={"X-Teacher-Token": token}
        )
        assert revealed.status_code == 200, revealed.text
        quiz = json.loads(next(events)["data"])["quiz"]
        assert quiz["status"] == "revealed" and quiz["worked"]["expected"] == right
        assert quiz["worked"] == json.loads(quiz_question(MACS["question"]).worked)
        assert quiz["spread"] == [[right, 2, 1], [right + 1, 1, 0]]
        # closed: no new or changed answer, no second reveal
        assert answer(client, code, quiz_id, "student-dddd", right).status_code == 409
        assert answer(client, code, quiz_id, "student-aaaa", right).status_code == 409
        assert tally(client, code, token)["quiz"]["answered"] == 3

        assert (
            client.delete(
                f"/api/sessions/{code}/quiz", headers={"X-Teacher-Token": token}
            ).status_code
            == 200
        )
        assert json.loads(next(events)["data"])["quiz"] is None
    assert tally(client, code, token)["quiz"] is None
    assert tally(client, other_code, other_token)["quiz"] is None  # sessions stay apart


def test_quiz_controls_need_the_teacher_token_and_answers_are_checked(client):
    code, token = start(client)
    assert ask(client, code, "wrong").status_code == 403
    assert (
        client.get(f"/api/sessions/{code}/quiz", headers={"X-Teacher-Token": "x"}).status_code
        == 403
    )
    for ref in ("convolution.nope", "no dots"):
        refused = ask(client, code, token, question=ref)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "question"]
    quiz_id = ask(client, code, token).json()["quiz_id"]
    assert client.post(f"/api/sessions/{code}/quiz/{quiz_id}/reveal").status_code == 401
    for student, value, status in (
        ("short", 1, 422),
        ("has space!", 1, 422),
        ("student-eeee", "one", 422),
        ("student-eeee", True, 422),
        ("student-eeee", 1e300, 422),
    ):
        assert answer(client, code, quiz_id, student, value).status_code == status
    assert answer(client, code, quiz_id + 1, "student-eeee", 1).status_code == 409
    # a new question replaces the old one: answers to the old one are refused
    assert ask(client, code, token).json()["quiz_id"] == quiz_id + 1
    assert answer(client, code, quiz_id, "student-eeee", 1).status_code == 409
    assert tally(client, code, token)["quiz"]["answered"] == 0


def test_answers_per_question_are_bounded(client, server):
    _, holder = server
    hub = holder["hub"]
    code, token = start(client)
    quiz_id = ask(client, code, token).json()["quiz_id"]
    limit = hub.limits.max_quiz_answers
    for i in range(limit):
        hub.answer(code, quiz_id, f"student-{i:04d}", i)
    assert answer(client, code, quiz_id, "student-late", 1).status_code == 409
    assert answer(client, code, quiz_id, "student-0001", 7).status_code == 200  # a change
    assert tally(client, code, token)["quiz"]["answered"] == limit


def test_a_choice_question_over_the_api(client):
    code, token = start(client)
    quiz_id = ask(client, code, token, question="dilation.params").json()["quiz_id"]
    right = expected("dilation.params")
    options = list(quiz_question("dilation.params").options)
    wrong = next(option for option in options if option != right)
    for student, value in (
        ("student-aaaa", right),
        ("student-bbbb", wrong),
        ("student-cccc", options.index(right)),
    ):
        assert answer(client, code, quiz_id, student, value).status_code == 200
    assert answer(client, code, quiz_id, "student-dddd", "params_other").status_code == 422
    counted = tally(client, code, token)["quiz"]
    assert counted["kind"] == "choice" and counted["correct"] == 2
    assert counted["spread"] == [
        [i, 2 if o == right else 1, int(o == right)] for i, o in enumerate(options)
    ]
