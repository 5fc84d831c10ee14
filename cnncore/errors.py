"""One error family for everything the core refuses, with messages a student can act on."""

from collections.abc import Sequence
from typing import Any


class CNNCoreError(ValueError):
    """An impossible or unsupported configuration. `field` names the offending input, if any.

    `code` is a stable name for the kind of refusal in curriculum words (`conv_output_empty`,
    `same_padding_needs_stride_1` ...) and `ctx` its numbers (`{"size": 5, "kernel": 7}`): the
    API sends both (app/errors.py) and the pages translate `error.type.<code>` with `ctx` filled
    in, so the English `message` is only the fallback. Without a code the API says `value_error`.
    """

    code: str | None = None  # a subclass may name its kind once for all its instances

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str | None = None,
        ctx: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.field = field
        if code is not None:
            self.code = code
        self.ctx: dict[str, Any] = dict(ctx or {})


def shape_text(shape: Sequence[int]) -> str:
    """A shape as the pages and the refusals write it (2×3×3); a 0-d value's empty shape is []."""
    return "×".join(map(str, shape)) or "[]"
