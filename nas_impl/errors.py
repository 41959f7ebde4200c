"""The one exception type users see.

Anything a user can get wrong (missing data, wrong checksum, invalid spec or recipe, NaN loss)
raises `NasReproError` with a message that names the file or key and says what to do. The CLI
prints the message alone, without a traceback, and exits with status 2.
"""

import errno


class NasReproError(Exception):
    """A user-facing error: its message names the file or key and the fix."""


class DataError(NasReproError):
    """A dataset file is missing, truncated, malformed or has the wrong checksum."""


class SpecError(NasReproError):
    """An architecture spec or recipe is invalid (unknown family, bad key, bad value)."""


class TrainingDiverged(NasReproError):
    """The loss became NaN or Inf."""


class Interrupted(NasReproError):
    """Ctrl-C or SIGTERM: the run stopped; its last complete checkpoint is valid."""

    exit_code = 130


def describe_os_error(err: OSError) -> str:
    """What an OSError means for the user, in a few words."""
    return {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.EEXIST: "a file of that name is in the way",
        errno.ENOENT: "no such file or folder",
    }.get(err.errno, err.strerror or str(err))
