"""Atomic file writes: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from nas_impl.errors import NasReproError, SpecError, describe_os_error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds.
    A file-system failure (full disk, read-only folder, a file where a folder should be) is one
    NasReproError naming `path`; the temporary is removed whatever happens."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise NasReproError(f"cannot write {path} ({describe_os_error(err)}): free space, fix the folder's "
                            "permissions, or write elsewhere") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_csv_rows_atomic(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as CSV with `columns` (other keys of a row are left out)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_user_text(path: str | Path, what: str, fix: str) -> str:
    """The UTF-8 text of a file a user named (a spec, a recipe, a manifest), or one SpecError
    that names it, says what is wrong (absent, a folder, not UTF-8, unreadable) and, for a file
    that is not there, the fix."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{what} {path} is a folder, not a file: {fix}")
    if not path.exists():
        raise SpecError(f"{what} {path} does not exist: {fix}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"{what} {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                        f"{err.start}): save it as UTF-8") from None
    except OSError as err:
        raise SpecError(f"{what} {path} cannot be read ({describe_os_error(err)}): fix its permissions") from None
