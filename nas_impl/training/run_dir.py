"""The folder of one run (a training, or a search stage), from its first moment to its last.

Before the first epoch the folder must be writable (checked, not discovered after an hour of
training) and the temporaries of atomic writes that a kill interrupted are removed. Each loop
then removes the results an earlier finished run left there (after the resume check, so a
refused --resume destroys nothing), so that a run which dies never leaves an old result beside
its own checkpoint; a fresh run (no --resume) also removes the old checkpoint and logs. An
interruption (Ctrl-C, SIGTERM) ends with one line naming the last complete checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nas_impl.errors import Interrupted, NasReproError, describe_os_error


def prepare_run_dir(out_dir: str | Path) -> Path:
    """Create `out_dir`, check that files can be written there, and remove the temporaries of
    atomic writes that a kill interrupted."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise NasReproError(f"--out {out_dir} is not a writable folder ({describe_os_error(err)}): "
                            "choose another --out") from None
    remove_files(out_dir, [".*.tmp"])
    return out_dir


def remove_files(out_dir: Path, patterns: Iterable[str]) -> None:
    """Delete the files in `out_dir` matching any of the glob `patterns`."""
    for pattern in patterns:
        for path in out_dir.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()


@contextmanager
def interruptible(checkpoint: Path, completed_epochs: Callable[[], int]) -> Iterator[None]:
    """Turn Ctrl-C (and SIGTERM, which the CLI raises as KeyboardInterrupt) into one message saying
    what is left: checkpoints are written atomically, so the last complete one is valid."""
    try:
        yield
    except KeyboardInterrupt:
        done = completed_epochs()
        if done and checkpoint.is_file():
            left = f"the last complete checkpoint is {checkpoint} (epoch {done}): rerun with --resume to continue"
        else:
            left = "no epoch had finished, so no checkpoint was written: rerun to start again"
        raise Interrupted(f"interrupted; {left}") from None


def last_checkpoint_note(checkpoint: Path) -> str:
    """For failure messages: where the run can continue from, if anywhere."""
    if checkpoint.is_file():
        return f"the last good checkpoint is {checkpoint}"
    return "no checkpoint was written (it failed in its first epoch)"
