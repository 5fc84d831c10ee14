"""Class sessions shared through PostgreSQL: two hubs on one database, as two server workers.

A session created on one is followed on the other (events in order, the same frames, replay with
Last-Event-ID), the quiz is asked on one and answered on both, the spread and the reveal reach
the followers of the other, the follower count adds both workers up, and the end reaches them
all. The real two-worker server runs the same flow in test_runs_several_workers.py."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from app.quiz import quiz_question
from app.session_limits import HubLimits
from app.sessions_shared import QuizConflict, UnknownSession, WrongTeacherToken

LIMITS = HubLimits(max_sessions=5, max_followers=20, max_state_bytes=4096, idle_seconds=600,
                   replay_events=4, wake_seconds=0.2, replay_bytes=100_000)  # fmt: skip
TIMEOUT = 10


async def take(events: AsyncIterator, count: int) -> list[dict]:
    """The next `count` events from a follower's stream, as their payloads."""
    return [(await asyncio.wait_for(anext(events), TIMEOUT)).payload for _ in range(count)]


async def until(predicate, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.05)


def test_a_session_works_whichever_worker_a_student_reaches(postgres_url):
    from app.sessions_postgres import PostgresHub

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        teacher_side, student_side = (PostgresHub(postgres_url, LIMITS, loop, poll_seconds=0.2)
                                      for _ in range(2))  # fmt: skip
        try:
            view, token = await asyncio.to_thread(teacher_side.create, "/conv", {"stride": 1})
            code = view.code
            follower = student_side.subscribe(code.lower(), None).events()
            assert [e["state"] for e in await take(follower, 1)] == [{"stride": 1}]
            publish = teacher_side.publish
            published = [
                await asyncio.to_thread(publish, code, token, "/conv", {"stride": i}, i)
                for i in range(2, 5)
            ]
            received = await take(follower, 3)
            assert [e["event_id"] for e in received] == [2, 3, 4]
            assert [e["state"]["stride"] for e in received] == [2, 3, 4]
            # the very frames the teacher's worker built
            again = student_side.subscribe(code, 1)
            replayed = again._mailbox
            assert [e.frame for e in replayed] == [e.frame for e in published]
            again.close()
            await until(lambda: student_side.view(code).followers == 1, "the follower count")
            assert teacher_side.view(code).followers == 1  # counted on the other worker

            # the quiz: asked on one worker, answered on both, revealed to the other's follower
            question = quiz_question("convolution.output")
            asked = await asyncio.to_thread(teacher_side.ask, code, token, question)
            quiz_id = asked.quiz["id"]
            (event,) = await take(follower, 1)
            assert event["quiz"]["status"] == "open" and event["state"] == {"stride": 4}
            right = json.loads(question.worked)["expected"]
            await asyncio.to_thread(student_side.answer, code, quiz_id, "student-a", "3.24×10^2")
            await asyncio.to_thread(teacher_side.answer, code, quiz_id, "student-b", 300)
            await asyncio.to_thread(student_side.answer, code, quiz_id, "student-b", 301)
            tally = await asyncio.to_thread(teacher_side.tally, code, token)
            assert (tally.answered, tally.correct) == (2, 1)
            assert tally.spread == [[301, 1, 0], [right, 1, 1]]
            with pytest.raises(WrongTeacherToken):
                student_side.tally(code, "wrong")
            await asyncio.to_thread(student_side.reveal, code, token, quiz_id)
            (event,) = await take(follower, 1)
            assert event["quiz"]["status"] == "revealed"
            assert event["quiz"]["spread"] == [[301, 1, 0], [right, 1, 1]]
            with pytest.raises(QuizConflict):
                teacher_side.answer(code, quiz_id, "student-c", right)

            # the teacher's own picture: shared through one worker, fetched through the other
            await asyncio.to_thread(teacher_side.set_picture, code, token, b"PNG bytes",
                                    "image/png")  # fmt: skip
            (event,) = await take(follower, 1)
            assert event["picture"] == 1
            shared = await asyncio.to_thread(student_side.picture, code)
            assert (shared.version, shared.media_type, shared.data) == (
                1, "image/png", b"PNG bytes")

            # the end, from the teacher's worker, ends the stream on the other
            await asyncio.to_thread(teacher_side.end, code, token)
            async with asyncio.timeout(TIMEOUT):
                assert [e async for e in follower] == []
            with pytest.raises(UnknownSession):
                student_side.view(code)
        finally:
            for hub in (teacher_side, student_side):
                await asyncio.to_thread(hub.close)

    asyncio.run(scenario())


def test_the_replay_ring_in_the_database_keeps_its_bounds(postgres_url):
    from app.sessions_postgres import PostgresHub

    async def scenario() -> None:
        hub = PostgresHub(postgres_url, LIMITS, asyncio.get_running_loop(), poll_seconds=0.2)
        try:
            view, token = hub.create("/conv", {})
            for i in range(10):
                hub.publish(view.code, token, "/conv", {"i": i}, i)
            ids = [e.event_id for e in hub.subscribe(view.code, 0)._mailbox]
            assert ids == [11]  # the ring keeps 4 events: 8–11; event 1 is gone
            assert [e.event_id for e in hub.subscribe(view.code, 7)._mailbox] == [8, 9, 10, 11]
            bounded = HubLimits(**{**vars(LIMITS), "replay_bytes": 400})
            small = PostgresHub(postgres_url, bounded, asyncio.get_running_loop(), 0.2)
            try:
                small.publish(view.code, token, "/conv", {"s": "x" * 150}, 0)
                small.publish(view.code, token, "/conv", {"s": "y" * 150}, 1)
                kept = [e.event_id for e in small.subscribe(view.code, 11)._mailbox]
                assert kept == [13]  # two ~260-byte frames do not fit 400 bytes
            finally:
                small.close()
        finally:
            hub.close()

    asyncio.run(scenario())
