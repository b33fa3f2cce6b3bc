"""The one exception type users see: a bad input, reported as a single line before heavy work."""


class PrunesweepError(ValueError):
    """A configuration or input problem the user can fix (bad value, missing file, incompatible method)."""
