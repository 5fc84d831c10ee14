"""The configurable request limits of `Settings`, checked after parsing, each naming its field."""

from cnncore.errors import CNNCoreError


def at_most(field: str, value: float, limit: float, what: str) -> None:
    """Refuse `value` above `limit` with a 422 naming `field` (through `CNNCoreError`)."""
    if value > limit:
        raise CNNCoreError(f"the {what} may be at most {limit}, got {value}", field)
