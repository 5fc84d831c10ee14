"""One error family for everything the core refuses, with messages a student can act on."""


class CNNCoreError(ValueError):
    """An impossible or unsupported configuration. `field` names the offending input, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
