# ruff: noqa: F811  (pytest fixtures imported from test_sessions_routes, used as arguments)
"""The live class quiz over a live server: the teacher asks a lesson's question, students answer
(one answer each, changeable until the reveal), the teacher reads the spread, reveals the worked
answer (which every follower receives in the stream), and closes the question."""

import json

import pytest

# the live server and its fixtures are those of the route tests
from test_sessions_routes import base_url, client, server, sse_events, start  # noqa: F401

from app.lessons import lesson_by_slug
from app.quiz import QuizRefused, count_answers, is_correct, quiz_question, valid_answer

MACS = {"lesson": "convolution", "question": "output", "part": "macs"}


def exact(lesson: str, question: str, part: str) -> float | int:
    found = next(q for q in lesson_by_slug(lesson).questions if q.id == question)
    return next(a for a in found.answers() if a.label == part).exact


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
    question = quiz_question("convolution", "output", "macs")
    public, worked = json.loads(question.public), json.loads(question.worked)
    assert question.kind == "number" and question.exact == exact("convolution", "output", "macs")
    assert set(public["texts"]) == {"ko", "en"}
    assert public["texts"]["en"]["label"] == "Multiply–accumulates (MACs)"
    assert public["texts"]["ko"]["text"] != public["texts"]["en"]["text"]
    assert worked["exact"] == question.exact and worked["work"]  # the worked lines
    assert "exact" not in public and str(question.exact) not in json.dumps(public["texts"])


@pytest.mark.parametrize(
    "lesson,question,part,field",
    [
        ("nope", "output", "macs", "lesson"),
        ("convolution", "nope", "macs", "question"),
        ("convolution", "output", "nope", "part"),
        ("convolution", "output", "output_size", "part"),  # a shape, not a single number
    ],
)
def test_unaskable_questions_are_refused_naming_the_field(lesson, question, part, field):
    with pytest.raises(QuizRefused) as refused:
        quiz_question(lesson, question, part)
    assert refused.value.field == field


def test_answers_are_checked_to_the_precision_the_lessons_show():
    loss = quiz_question("softmax-loss", "softmax", "loss")  # 0.41703…
    assert is_correct(loss, 0.417) and is_correct(loss, 0.4170) and not is_correct(loss, 0.42)
    macs = quiz_question("convolution", "output", "macs")
    assert is_correct(macs, valid_answer(macs, 324.0)) and not is_correct(macs, 325)
    assert count_answers(macs, [325, 324, 324, 1.5]) == [[1.5, 1], [324, 2], [325, 1]]
    for bad in (True, "324", float("inf"), 1e16, None):
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
        assert (quiz["id"], quiz["status"], quiz["question"]["part"]) == (quiz_id, "open", "macs")
        assert "worked" not in quiz  # the answer stays hidden until the reveal

        right = exact(**MACS)
        for student, value in (
            ("student-aaaa", 100),
            ("student-bbbb", right),
            ("student-cccc", right),
            ("student-aaaa", right + 1),
        ):
            assert answer(client, code, quiz_id, student, value).status_code == 204
        counted = tally(client, code, token)["quiz"]
        assert counted == {
            "quiz_id": quiz_id,
            "kind": "number",
            "status": "open",
            "answered": 3,
            "spread": [[right, 2], [right + 1, 1]],
            "correct": 2,
        }

        revealed = client.post(
            f"/api/sessions/{code}/quiz/{quiz_id}/reveal", headers={"X-Teacher-Token": token}
        )
        assert revealed.status_code == 200, revealed.text
        quiz = json.loads(next(events)["data"])["quiz"]
        assert quiz["status"] == "revealed" and quiz["worked"]["exact"] == right
        assert quiz["worked"]["work"] == json.loads(quiz_question(*MACS.values()).worked)["work"]
        assert quiz["spread"] == [[right, 2], [right + 1, 1]]
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
    refused = ask(client, code, token, part="output_size")
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "part"]
    quiz_id = ask(client, code, token).json()["quiz_id"]
    assert client.post(f"/api/sessions/{code}/quiz/{quiz_id}/reveal").status_code == 422
    for student, value, status in (
        ("short", 1, 422),
        ("has space!", 1, 422),
        ("student-eeee", "1", 422),
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
    assert answer(client, code, quiz_id, "student-0001", 7).status_code == 204  # a change
    assert tally(client, code, token)["quiz"]["answered"] == limit
