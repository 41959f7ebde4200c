"""The one exception type users see.

Anything a user can get wrong (missing data, wrong checksum, invalid spec or recipe, NaN loss)
raises `NasReproError` with a message that names the file or key and says what to do. The CLI
prints the message alone, without a traceback, and exits with status 2.
"""


class NasReproError(Exception):
    """A user-facing error: its message names the file or key and the fix."""


class DataError(NasReproError):
    """A dataset file is missing, truncated, malformed or has the wrong checksum."""


class SpecError(NasReproError):
    """An architecture spec or recipe is invalid (unknown family, bad key, bad value)."""


class TrainingDiverged(NasReproError):
    """The loss became NaN or Inf."""
