# ruff: noqa: F811  (pytest fixtures imported from test_sessions_routes, used as arguments)
"""Classroom memory: what a session holds is bounded by bytes, so every session at every limit
fits `class_memory_bytes` (measured with tracemalloc); state no follower could use is refused."""

import gc
import secrets
import tracemalloc

import pytest

# the live server and its fixtures are those of the route tests
from test_sessions_routes import base_url, client, server, start  # noqa: F401

from app.quiz import quiz_question
from app.session_limits import HubLimits, session_memory_bound
from app.sessions import InMemoryHub
from app.settings import Settings


def fill_to_the_limits(hub: InMemoryHub, count: int) -> None:
    """`count` sessions, each with a full replay ring (as many events as allowed, as many bytes
    as allowed, the last state as large as allowed) and a revealed question answered by as many
    students as allowed, each with a different number (the largest spread) and a 64-character
    id, and the teacher's picture as large as allowed."""
    limits = hub.limits
    question = quiz_question("convolution.output")
    per_event = limits.replay_bytes // limits.replay_events
    small = {"s": "x" * max(0, per_event - 120)}
    largest = {"s": "가" * ((limits.max_state_bytes - 8) // 3)}
    for _ in range(count):
        view, token = hub.create("/conv", small)
        for step in range(limits.replay_events):
            hub.publish(view.code, token, "/conv?stride=2", small, step)
        hub.publish(view.code, token, "/conv?stride=2", largest, 0)
        quiz_id = hub.ask(view.code, token, question).quiz["id"]
        for i in range(limits.max_quiz_answers):
            hub.answer(view.code, quiz_id, f"{i:064d}", 1000.5 + i)
        hub.reveal(view.code, token, quiz_id)
        hub.set_picture(view.code, token, secrets.token_bytes(limits.picture_bytes), "image/png")
        hub.publish(view.code, token, "/conv?stride=2", largest, 1)


def test_every_session_at_the_limits_fits_the_stated_budget():
    settings = Settings(_env_file=None)
    limits = HubLimits.from_settings(settings)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hub = InMemoryHub(limits)
        fill_to_the_limits(hub, settings.max_class_sessions)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(hub) == settings.max_class_sessions
    per_session = held / settings.max_class_sessions
    print(
        f"\n{settings.max_class_sessions} sessions at the limits hold {held / 1e6:.1f} MB "
        f"({per_session / 1e3:.0f} kB each; bound {session_memory_bound(limits) / 1e3:.0f} kB, "
        f"budget {settings.class_memory_bytes / 1e6:.0f} MB)"
    )
    assert per_session <= session_memory_bound(limits)
    assert held <= settings.class_memory_bytes
    for session in hub._sessions.values():
        assert session.recent_bytes == sum(len(e.frame) for e in session.recent)
        assert session.recent_bytes <= limits.replay_bytes


def test_the_replay_ring_keeps_the_newest_events_within_its_bytes():
    limits = HubLimits(
        max_sessions=2,
        max_followers=5,
        max_state_bytes=4096,
        idle_seconds=60,
        replay_events=100,
        wake_seconds=1,
        replay_bytes=10_000,
    )
    hub = InMemoryHub(limits)
    view, token = hub.create("/conv", {})
    for i in range(30):
        hub.publish(view.code, token, "/conv", {"s": "y" * 3000, "i": i}, i)
    ids = [event.event_id for event in hub.subscribe(view.code, 0)._mailbox]
    assert ids == [31]  # event 1 is gone: the latest snapshot alone
    kept = hub._sessions[view.code].recent
    assert [e.event_id for e in kept] == [29, 30, 31]  # three frames of ~3 kB fit 10 kB
    replay = [e.event_id for e in hub.subscribe(view.code, 28)._mailbox]
    assert replay == [29, 30, 31]
    assert hub.view(view.code).latest.state == {"s": "y" * 3000, "i": 29}


def test_settings_whose_sessions_cannot_fit_the_budget_are_refused():
    with pytest.raises(ValueError, match="class_memory_bytes"):
        Settings(_env_file=None, max_class_sessions=10_000)
    Settings(_env_file=None, max_class_sessions=10_000, class_memory_bytes=10**10)


@pytest.mark.parametrize(
    "state_text",
    [
        '{"s": "\\ud800"}',  # a lone surrogate: valid JSON, no UTF-8 text
        '{"s": ["ok", "\\udfff"]}',
        '{"s": {"nested": {"deeper": 1}}}',  # a page state holds objects one level deep only
        '{"s": [[1, 2]]}',
        '{"has space": 1}',
    ],
)
def test_state_no_follower_could_use_is_a_422(client, state_text):
    code, token = start(client)
    for path, headers in (
        ("/api/sessions", {}),
        (f"/api/sessions/{code}/state", {"X-Teacher-Token": token}),
    ):
        body = '{"page": "/conv", "state": ' + state_text + "}"
        response = client.post(
            path, content=body.encode(), headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][:2] == ["body", "state"]
    assert client.get(f"/api/sessions/{code}").json()["event_id"] == 1


def test_every_kind_of_state_a_page_holds_is_accepted(client):
    state = {
        "stride": 2,
        "lr": 0.01,
        "bias": True,
        "name": "소벨 ✓",
        "layers": ["a", "b"],
        "logits": [2, 1, 0.1],
        "run": None,
        "empty": [],
    }
    code, token = start(client, state=state)
    assert client.get(f"/api/sessions/{code}").json()["state"] == state
