"""Request and response bodies of the classroom follow-mode API (`/api/sessions`)."""

import json
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, JsonValue

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
    Field(max_length=MAX_PAGE_LENGTH, pattern=r"^/[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$",
          examples=["/conv?kernel=3&stride=2"]),
    AfterValidator(_same_site_page),
]
def _finite_json(state: dict) -> dict:
    """NaN and Infinity parse from a request body but cannot be sent on to followers as JSON."""
    try:
        json.dumps(state, allow_nan=False)
    except ValueError as exc:
        raise ValueError("state must hold only finite numbers (no NaN or Infinity)") from exc
    return state


PageState = Annotated[
    dict[str, JsonValue],
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
