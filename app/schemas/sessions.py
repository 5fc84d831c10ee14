"""Request and response bodies of the classroom follow-mode API (`/api/sessions`)."""

import json
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, JsonValue, StrictFloat, StrictInt

MAX_PAGE_LENGTH = 1024
MAX_STEP = 10_000_000  # a player step index; traces are far smaller, this only bounds the int


def _same_site_page(page: str) -> str:
    """A page is a path on this server: followers are redirected to it, so it must never name
    another origin (`//host`, `/\\host`) nor the API or the join page itself."""
    if page.startswith(("//", "/\\", "/api", "/join")):
        raise ValueError("page must be a page path of this site, such as /conv?stride=2")
    return page


# Printable URL characters only (RFC 3986 unreserved, reserved and %-escapes); no '#', no spaces.
Page = Annotated[
    str,
    Field(
        max_length=MAX_PAGE_LENGTH,
        pattern=r"^/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$",
        examples=["/conv?kernel=3&stride=2"],
    ),
    AfterValidator(_same_site_page),
]


def _finite_json(state: dict) -> dict:
    """NaN and Infinity parse from a request body but cannot be sent on to followers as JSON;
    nor can a lone surrogate (`"\\ud800"` is valid JSON, but no UTF-8 text)."""
    try:
        json.dumps(state, allow_nan=False, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ValueError(
            "state must hold only text that UTF-8 can encode (no lone surrogate such as \\ud800)"
        ) from exc
    except ValueError as exc:
        raise ValueError("state must hold only finite numbers (no NaN or Infinity)") from exc
    return state


# What a page's state table can hold (static/js/state.js): numbers, text, true/false, lists of
# them or of flat records of them (a custom field's value: /features' `unit`, the path of units
# walked, [{layer, channel, y, x}, …]), and one level of object of those (a lesson's
# `explorer`: its framed explorer's state). Anything deeper no follower's page could apply.
StateKey = Annotated[str, Field(max_length=64)]
StateScalar = str | int | float | bool | None
StateLeaf = StateScalar | list[StateScalar | dict[StateKey, StateScalar]]
StateValue = StateLeaf | dict[StateKey, StateLeaf]


PageState = Annotated[
    dict[Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], StateValue],
    Field(description="the page's declarative URL state; bounded by max_session_state_bytes"),
    AfterValidator(_finite_json),
]
Step = Annotated[int | None, Field(ge=0, le=MAX_STEP, description="player step, if any")]


class SessionCreate(BaseModel):
    page: Page
    state: PageState = Field(default_factory=dict)


class SessionCreated(BaseModel):
    code: str
    teacher_token: str = Field(description="secret: send it back as X-Teacher-Token")
    join_url: str
    qr_svg: str = Field(description="the join URL as a QR code, an inline SVG document")
    reachable: bool = Field(True, description="False: the server listens on loopback only, "
                            "so the students' devices cannot open the join URL")  # fmt: skip
    lan_commands: list[str] = Field(
        default_factory=list, description="commands that serve the local network"
    )


class StatePublish(BaseModel):
    page: Page
    state: PageState = Field(default_factory=dict)
    step: Step = None


class StatePublished(BaseModel):
    event_id: int


class SessionSnapshot(BaseModel):
    code: str
    page: str
    state: dict[str, JsonValue]
    step: int | None
    event_id: int
    followers: int
    quiz: dict[str, JsonValue] | None = None  # the question asked, as followers see it


# --- the live class quiz ----------------------------------------------------------------------
class QuizAsk(BaseModel):
    """Which lesson question the class is asked (ids as `GET /api/questions` lists them)."""

    question: str = Field(max_length=100, pattern=r"^[a-z0-9_-]+\.[a-z0-9_-]+$",
                          examples=["convolution.output"])  # fmt: skip


class QuizAsked(BaseModel):
    quiz_id: int
    event_id: int


class QuizAnswer(BaseModel):
    value: StrictInt | StrictFloat | Annotated[str, Field(max_length=64)] = Field(
        description="the number, or the chosen option's id (or index)"
    )


class QuizAnswered(BaseModel):
    value: float | int = Field(description="the answer as read: a number, or the option's index")


class QuizTallyOut(BaseModel):
    quiz_id: int
    kind: str
    status: str = Field(description="open (answers accepted) or revealed")
    answered: int
    spread: list[list[float | int]] = Field(
        description="[value, count, right] in increasing value (numbers), [index, count, right] "
        "for every option (choices); right is 1 for the right answer"
    )
    correct: int


class QuizState(BaseModel):
    """The question being asked, if any, as the teacher sees it."""

    quiz: QuizTallyOut | None
    followers: int
