"""The in-memory classroom hub: codes, ordering, replay, fan-out, slow followers, expiry, limits."""

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sessions import HubLimits, InMemoryHub
from app.sessions_shared import (
    CODE_ALPHABET,
    CODE_LENGTH,
    SessionsFull,
    StateTooLarge,
    Subscription,
    UnknownSession,
    WrongTeacherToken,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(clock=None, **overrides) -> InMemoryHub:
    limits = dict(
        max_sessions=10,
        max_followers=300,
        max_state_bytes=1024,
        idle_seconds=60.0,
        replay_events=8,
        wake_seconds=0.01,
        mailbox_events=32,
    )
    limits.update(overrides)
    return InMemoryHub(HubLimits(**limits), clock=clock or FakeClock())


async def drain(subscription: Subscription, count: int, timeout: float = 2.0) -> list[int]:
    """The next `count` event ids a follower receives."""
    ids: list[int] = []
    events = subscription.events()
    async with asyncio.timeout(timeout):
        async for event in events:
            ids.append(event.event_id)
            if len(ids) == count:
                break
    await events.aclose()
    return ids


def test_code_is_short_unambiguous_and_case_insensitive():
    hub = make_hub()
    view, token = hub.create("/conv", {"stride": 2})
    assert len(view.code) == CODE_LENGTH
    assert set(view.code) <= set(CODE_ALPHABET)
    assert not set("0O1I") & set(CODE_ALPHABET)
    assert len(token) >= 24
    assert hub.view(view.code.lower()).latest.event_id == 1
    assert hub.view(f" {view.code} ").latest.state == {"stride": 2}


def test_a_code_already_in_use_is_drawn_again(monkeypatch):
    letters = iter("AAAAAAAAAAAABBBBBB")  # the second draw collides with the first
    monkeypatch.setattr("app.sessions_shared.secrets.choice", lambda alphabet: next(letters))
    hub = make_hub()
    assert [hub.create("/conv", {})[0].code for _ in range(2)] == ["AAAAAA", "BBBBBB"]


def test_publish_numbers_events_in_order_and_keeps_the_latest():
    hub = make_hub()
    view, token = hub.create("/conv", {})
    ids = [hub.publish(view.code, token, "/conv", {"k": i}, i).event_id for i in range(5)]
    assert ids == [2, 3, 4, 5, 6]
    latest = hub.view(view.code).latest
    assert (latest.event_id, latest.state, latest.step) == (6, {"k": 4}, 4)


def test_sse_frame_carries_id_and_the_whole_snapshot():
    hub = make_hub()
    view, token = hub.create("/pool", {})
    event = hub.publish(view.code, token, "/conv?stride=2", {"stride": 2, "name": "소벨"}, 7)
    lines = event.frame.decode().split("\r\n")
    assert lines[0] == "id: 2" and lines[1] == "event: state"
    payload = json.loads(lines[2].removeprefix("data: "))
    assert payload == {
        "event_id": 2,
        "page": "/conv?stride=2",
        "step": 7,
        "quiz": None,
        "state": {"stride": 2, "name": "소벨"},
    }
    assert event.frame.endswith(b"\r\n\r\n")


def test_wrong_token_and_unknown_code_are_refused():
    hub = make_hub()
    view, token = hub.create("/conv", {})
    with pytest.raises(WrongTeacherToken):
        hub.publish(view.code, token + "x", "/conv", {}, None)
    with pytest.raises(WrongTeacherToken):
        hub.end(view.code, "")
    with pytest.raises(UnknownSession):
        hub.view("ZZZZZZ" if view.code != "ZZZZZZ" else "YYYYYY")
    with pytest.raises(UnknownSession):
        hub.subscribe("nope", None)
    assert hub.view(view.code).latest.event_id == 1  # nothing was published


def test_followers_receive_every_event_in_order():
    async def scenario():
        hub = make_hub()
        view, token = hub.create("/conv", {})
        first = hub.subscribe(view.code, None)
        for i in range(10):
            hub.publish(view.code, token, "/conv", {}, i)
        second = hub.subscribe(view.code, None)  # joins late: the latest snapshot only
        hub.publish(view.code, token, "/conv", {}, 10)
        return await drain(first, 11), await drain(second, 2)

    first, second = asyncio.run(scenario())
    assert first == list(range(1, 12))
    assert second == [11, 12]


def test_fan_out_to_many_concurrent_followers():
    async def scenario():
        hub = make_hub()
        view, token = hub.create("/conv", {})
        followers = [hub.subscribe(view.code, None) for _ in range(250)]
        assert hub.view(view.code).followers == 250
        readers = [asyncio.create_task(drain(f, 21)) for f in followers]
        for i in range(20):
            await asyncio.sleep(0)  # let readers interleave with the teacher
            hub.publish(view.code, token, "/conv", {"i": i}, i)
        results = await asyncio.gather(*readers)
        return results, hub.view(view.code).followers

    results, left = asyncio.run(scenario())
    assert all(ids == list(range(1, 22)) for ids in results)
    assert left == 0  # each reader closed its iterator, which unregisters it


def test_slow_follower_keeps_the_newest_events_and_never_blocks_the_teacher():
    async def scenario():
        hub = make_hub(mailbox_events=4)
        view, token = hub.create("/conv", {})
        slow = hub.subscribe(view.code, None)
        for i in range(50):
            hub.publish(view.code, token, "/conv", {}, i)
        return await drain(slow, 4)

    assert asyncio.run(scenario()) == [48, 49, 50, 51]


@pytest.mark.parametrize(
    ("last_event_id", "expected"),
    [
        (20, [21, 22, 23]),  # within the ring: exactly the missed events
        (15, [16, 17, 18, 19, 20, 21, 22, 23]),  # the oldest the ring (8 events) can replay
        (14, [23]),  # too old for the ring: one full-state event
        (0, [23]),
        (23, []),  # up to date: nothing until the next publish
        (99, [23]),  # an id from another server life: the full state
        (None, [23]),  # a fresh follower
    ],
)
def test_replay_from_last_event_id(last_event_id, expected):
    hub = make_hub(replay_events=8)
    view, token = hub.create("/conv", {})
    for i in range(22):
        hub.publish(view.code, token, "/conv", {}, i)
    subscription = hub.subscribe(view.code, last_event_id)
    hub.publish(view.code, token, "/conv", {}, 99)
    assert asyncio.run(drain(subscription, len(expected) + 1)) == [*expected, 24]


@settings(max_examples=80, deadline=None)
@given(published=st.integers(0, 40), ring=st.integers(1, 12), last=st.integers(0, 50))
def test_replay_is_the_missed_suffix_or_the_latest_snapshot(published, ring, last):
    hub = make_hub(replay_events=ring)
    view, token = hub.create("/conv", {})
    for i in range(published):
        hub.publish(view.code, token, "/conv", {"i": i}, i)
    latest = published + 1
    subscription = hub.subscribe(view.code, last)
    backlog = [e.event_id for e in subscription._mailbox]
    if last == latest:
        assert backlog == []
    elif last < latest and latest - last <= ring:
        assert backlog == list(range(last + 1, latest + 1))
    else:
        assert backlog == [latest]


def test_idle_sessions_expire_and_their_followers_are_told():
    async def scenario():
        clock = FakeClock()
        hub = make_hub(clock, idle_seconds=60.0)
        view, token = hub.create("/conv", {})
        kept, kept_token = hub.create("/pool", {})
        follower = hub.subscribe(view.code, None)
        reader = asyncio.create_task(drain(follower, 99))
        clock.now += 50
        hub.publish(kept.code, kept_token, "/pool", {}, 1)  # the other teacher stays active
        clock.now += 11
        # No hub call: the idle follower's own wake-up sweeps the expired session, so its
        # stream ends (drain would otherwise time out waiting for 99 events).
        return await reader, hub, view.code, kept.code

    received, hub, expired, kept = asyncio.run(scenario())
    assert received == [1]
    with pytest.raises(UnknownSession):
        hub.view(expired)
    assert hub.view(kept).latest.event_id == 2
    assert len(hub) == 1


def test_expired_follower_stream_ends_after_its_queued_events():
    async def scenario():
        clock = FakeClock()
        hub = make_hub(clock, idle_seconds=60.0)
        view, token = hub.create("/conv", {})
        follower = hub.subscribe(view.code, None)
        clock.now += 61
        hub.sweep()
        return [e.event_id async for e in follower.events()], hub

    ids, hub = asyncio.run(scenario())
    assert ids == [1] and len(hub) == 0


def test_teacher_ends_the_session():
    async def scenario():
        hub = make_hub()
        view, token = hub.create("/conv", {})
        follower = hub.subscribe(view.code, None)
        hub.publish(view.code, token, "/conv", {}, 1)
        hub.end(view.code, token)
        return [e.event_id async for e in follower.events()], hub, view.code

    ids, hub, code = asyncio.run(scenario())
    assert ids == [1, 2]
    with pytest.raises(UnknownSession):
        hub.view(code)


def test_session_limit_and_room_after_expiry():
    clock = FakeClock()
    hub = make_hub(clock, max_sessions=3)
    for _ in range(3):
        hub.create("/conv", {})
    with pytest.raises(SessionsFull):
        hub.create("/conv", {})
    clock.now += 61
    hub.create("/conv", {})
    assert len(hub) == 1


def test_follower_limit_and_a_closed_follower_frees_its_place():
    hub = make_hub(max_followers=2)
    view, _ = hub.create("/conv", {})
    first = hub.subscribe(view.code, None)
    hub.subscribe(view.code, None)
    with pytest.raises(SessionsFull):
        hub.subscribe(view.code, None)
    first.close()
    first.close()  # idempotent
    assert hub.view(view.code).followers == 1
    hub.subscribe(view.code, None)


def test_state_size_limit_counts_utf8_bytes():
    hub = make_hub(max_state_bytes=100)
    view, token = hub.create("/conv", {"s": "x" * 90})  # {"s":"…"} is 96 bytes
    with pytest.raises(StateTooLarge) as refused:
        hub.publish(view.code, token, "/conv", {"s": "가" * 31}, None)  # 93 chars, 101 bytes
    assert refused.value.field == "state" and refused.value.status_code == 413
    with pytest.raises(StateTooLarge):
        hub.create("/conv", {"s": "x" * 95})
    assert hub.view(view.code).latest.event_id == 1
