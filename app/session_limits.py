"""The limits of the classroom hub and what one session may hold at them (no heavy imports:
the settings check their product against `class_memory_bytes` when they load)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["HubLimits", "session_memory_bound"]


@dataclass(frozen=True)
class HubLimits:
    max_sessions: int
    max_followers: int
    max_state_bytes: int
    idle_seconds: float
    replay_events: int
    wake_seconds: float  # how often an idle follower checks whether its session has expired
    mailbox_events: int = 32  # per follower; the oldest go first when a follower falls behind
    replay_bytes: int = 262_144  # encoded frames a session keeps for replay (the latest always)
    max_quiz_answers: int = 500  # answers to one question (one per student)
    picture_bytes: int = 300_000  # the teacher's picture shared in the session (one slot)

    @classmethod
    def from_settings(cls, settings: Settings) -> HubLimits:
        return cls(
            max_sessions=settings.max_class_sessions,
            max_followers=settings.max_session_followers,
            max_state_bytes=settings.max_session_state_bytes,
            idle_seconds=settings.session_idle_seconds,
            replay_events=settings.session_replay_events,
            wake_seconds=settings.session_ping_seconds,
            replay_bytes=settings.session_replay_bytes,
            max_quiz_answers=settings.max_quiz_answers,
            picture_bytes=settings.session_picture_bytes,
        )


# What Python holds beyond the bytes themselves (CPython 3.12, 64-bit; measured by
# tests/app/test_sessions_memory.py with tracemalloc): an event (the slotted ClassEvent, its
# bytes object's header, the ring's slot) and an answer (a student id of at most 64 characters,
# its number, the dict entry); a session's own objects and its question's texts.
EVENT_OVERHEAD_BYTES = 192
ANSWER_BYTES = 288
SESSION_OVERHEAD_BYTES = 24_576


def session_memory_bound(limits: HubLimits) -> int:
    """The most one session holds at the limits: its replay ring's frames and their objects,
    the latest state once more, the answers to its question, the teacher's picture, its own
    objects."""
    largest_frame = limits.max_state_bytes + 32_768  # the state, a question, its spread
    return (max(limits.replay_bytes, largest_frame) + limits.max_state_bytes
            + limits.replay_events * EVENT_OVERHEAD_BYTES
            + limits.max_quiz_answers * ANSWER_BYTES + limits.picture_bytes
            + SESSION_OVERHEAD_BYTES)  # fmt: skip
