"""Owner tokens: whoever creates a run or a dataset is given a token once; only its SHA-256 is
stored, and every change asks for it back in a header (401 without it, 403 with another).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header

__all__ = ["check_owner", "new_control_token", "token_digest", "token_header", "token_matches"]


def new_control_token() -> str:
    """An unguessable token for the creator (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(digest: str | None, token: str) -> bool:
    """Whether `token` is the one whose digest was stored (compared in constant time)."""
    return digest is not None and hmac.compare_digest(digest, token_digest(token))


def token_header(alias: str) -> Any:
    """The route parameter type of an owner token sent in the header `alias` (may be absent)."""
    return Annotated[str | None, Header(alias=alias, max_length=128)]


def check_owner(
    digest: str | None,
    token: str | None,
    refuse: Callable[[int, str], Exception],
    missing: str,
    wrong: str,
) -> None:
    """Raise `refuse(401, missing)` without a token, `refuse(403, wrong)` with another one."""
    if not token:
        raise refuse(401, missing)
    if not token_matches(digest, token):
        raise refuse(403, wrong)
