import hashlib
import os

import pytest

from nas_impl.data.checksums import file_digest, read_checksum_list, verify_file
from nas_impl.errors import DataError


def test_file_digest_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    payload = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    path.write_bytes(payload)
    assert file_digest(path) == hashlib.sha256(payload).hexdigest()
    assert file_digest(path, "md5") == hashlib.md5(payload).hexdigest()


def test_digest_cached_on_path_size_and_mtime(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"a" * 100)
    first = file_digest(path)
    stat = path.stat()
    path.write_bytes(b"b" * 100)  # same size; restore the mtime: the cache cannot tell
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digest(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert file_digest(path) == hashlib.sha256(b"b" * 100).hexdigest()


def test_verify_file_missing_names_path_and_how_to_get(tmp_path):
    path = tmp_path / "absent.bin"
    with pytest.raises(DataError, match="absent.bin: file not found.*Download it from X"):
        verify_file(path, "00", "sha256", "Download it from X.")


def test_verify_file_wrong_checksum_names_expected_and_actual(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"hello")
    actual = hashlib.md5(b"hello").hexdigest()
    with pytest.raises(DataError) as info:
        verify_file(path, "0" * 32, "md5", "Get a fresh copy.")
    message = str(info.value)
    assert str(path) in message and "0" * 32 in message and actual in message and "Get a fresh copy." in message
    verify_file(path, actual.upper(), "md5")  # case-insensitive expected value


def test_read_checksum_list(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'a' * 64}  one.npz\n{'B' * 64} *two.npz\n\n")
    assert read_checksum_list(sums) == {"one.npz": "a" * 64, "two.npz": "b" * 64}
    sums.write_text("not a checksum line\n")
    with pytest.raises(DataError, match="SHA256SUMS line 1"):
        read_checksum_list(sums)


# -- unreadable files: one DataError naming the file -----------------------------------------------
def test_a_folder_in_place_of_a_file_is_named(tmp_path):
    folder = tmp_path / "data.bin"
    folder.mkdir()
    with pytest.raises(DataError, match=r"data\.bin: is a folder, not a file\. get it"):
        verify_file(folder, "0" * 64, "sha256", "get it")
    with pytest.raises(DataError, match=r"data\.bin: is a folder, not a file"):
        file_digest(folder)


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    from nas_impl.data import checksums

    path = tmp_path / "locked.bin"
    path.write_bytes(b"x")

    def denied(name, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(name))

    monkeypatch.setattr(checksums, "open", denied, raising=False)
    checksums.clear_digest_cache()
    with pytest.raises(DataError, match=r"locked\.bin: cannot be read \(permission denied\)"):
        file_digest(path)


def test_a_checksum_list_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "SHA256SUMS"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DataError, match=r"SHA256SUMS: not a checksum list \(not UTF-8 text\)"):
        read_checksum_list(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError, match=r"SHA256SUMS: cannot be read \(it is a folder, not a file\)"):
        read_checksum_list(path)
