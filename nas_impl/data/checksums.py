"""File checksums: streamed digests, verification with a clear error, and an in-process cache.

Digests are cached on (path, size, mtime, algorithm, gunzip) so that loading the same dataset
twice in one process hashes each file once; a file that is rewritten gets a new key.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from nas_impl.errors import DataError, describe_os_error

ALGORITHMS = ("sha256", "md5")
_CHUNK = 1 << 20
_digest_cache: dict[tuple[str, int, int, str, bool], str] = {}


def file_digest(path: str | os.PathLike[str], algo: str = "sha256", *, gunzip: bool = False) -> str:
    """Hex digest of a file, read in chunks; with `gunzip`, of its gzip-decompressed content."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unsupported checksum algorithm {algo!r}; use one of {ALGORITHMS}")
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix the path or its permissions") from None
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file; put the data file itself there")
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, algo, gunzip)
    cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    hasher = hashlib.new(algo)
    opener = gzip.open if gunzip else open
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc}); the file is truncated or corrupt, "
                        "download it again") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix its permissions") from None
    digest = hasher.hexdigest()
    _digest_cache[key] = digest
    return digest


def verify_file(path: str | os.PathLike[str], expected: str, algo: str = "sha256", how_to_get: str = "") -> None:
    """Raise DataError unless `path` exists and its `algo` digest equals `expected`."""
    path = Path(path)
    hint = f" {how_to_get}" if how_to_get else ""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file.{hint}")
    if not path.is_file():
        raise DataError(f"{path}: file not found.{hint}")
    actual = file_digest(path, algo)
    if actual != expected.lower():
        raise DataError(
            f"{path}: wrong {algo} checksum: expected {expected.lower()}, got {actual}; "
            f"the file is corrupt, truncated or a different version.{hint}"
        )


def read_checksum_list(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a `sha256sum`/`md5sum` output file into {file name: hex digest}."""
    path = Path(path)
    table: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a checksum list (not UTF-8 text); regenerate it with sha256sum") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({describe_os_error(err)}); fix its permissions") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest_ok = len(parts) == 2 and all(c in "0123456789abcdefABCDEF" for c in parts[0])
        if not digest_ok:
            raise DataError(f"{path} line {number}: expected '<hex digest>  <file name>' "
                            f"(sha256sum format), got {line!r}")
        # sha256sum marks binary mode with a leading '*' on the name.
        name = parts[1].strip().removeprefix("*")
        table[name] = parts[0].lower()
    return table


def clear_digest_cache() -> None:
    """Forget cached digests (tests, or files changed within one mtime tick)."""
    _digest_cache.clear()
