import gzip
import struct

import pytest
import torch

from nas_impl.data import fashion_mnist
from nas_impl.data.fashion_mnist import load_fashion_mnist, read_idx
from nas_impl.errors import DataError

needs_system_copy = pytest.mark.skipif(
    not all((fashion_mnist.SYSTEM_DIR / name).is_file() for name in fashion_mnist.FILES),
    reason=f"Debian package dataset-fashion-mnist not installed ({fashion_mnist.SYSTEM_DIR})",
)


def write_idx(path, dims, payload: bytes) -> None:
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as stream:
        stream.write(header + payload)


@needs_system_copy
def test_real_fashion_mnist_from_system_copy(tmp_path):
    data = load_fashion_mnist(tmp_path)  # nothing under tmp_path: falls back to the Debian copy
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    assert data.train_y.bincount().tolist() == [6000] * 10
    assert data.test_y.bincount().tolist() == [1000] * 10
    assert data.input_size == (1, 28, 28) and data.num_classes == 10 and data.classes[9] == "Ankle boot"
    assert data.mean[0] == pytest.approx(0.2860, abs=1e-4) and data.std[0] == pytest.approx(0.3530, abs=1e-4)


def test_missing_file_names_path_and_how_to_get(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    write_idx(folder / fashion_mnist.TRAIN_LABELS, (1,), b"\x00")
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path)  # the folder exists: no fall-back to the system copy
    message = str(info.value)
    assert str(folder / fashion_mnist.TRAIN_IMAGES) in message and "not found" in message
    assert str(folder / fashion_mnist.TRAIN_LABELS) not in message  # present, so not listed as missing
    assert "dataset-fashion-mnist" in message and "zalandoresearch/fashion-mnist" in message
    assert f"remove {folder} to use the system copy in {fashion_mnist.SYSTEM_DIR}" in message


def test_nothing_found_names_both_locations(tmp_path):
    with pytest.raises(DataError, match=r"Fashion-MNIST not found: looked for .*fashion-mnist"):
        load_fashion_mnist(tmp_path, search_system=False)


def test_wrong_checksum_names_expected_and_actual(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in fashion_mnist.FILES:
        write_idx(folder / name, (1,), b"\x00")
    with pytest.raises(DataError) as info:
        load_fashion_mnist(tmp_path, search_system=False)
    message = str(info.value)
    assert fashion_mnist.TRAIN_IMAGES in message and "wrong md5" in message
    assert fashion_mnist.PUBLISHED_GZ_MD5[fashion_mnist.TRAIN_IMAGES] in message
    assert fashion_mnist.PUBLISHED_RAW_MD5[fashion_mnist.TRAIN_IMAGES] in message


def test_read_idx_round_trip(tmp_path):
    path = tmp_path / "images.gz"
    images = torch.randint(0, 256, (4, 3, 5), dtype=torch.uint8)
    write_idx(path, (4, 3, 5), images.numpy().tobytes())
    assert torch.equal(read_idx(path, 3), images)


def test_truncated_idx_file(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, (4, 28, 28), bytes(4 * 28 * 28 - 100))
    with pytest.raises(DataError, match=r"images.gz: truncated IDX file: header says shape \(4, 28, 28\) = 3136 bytes"):
        read_idx(path, 3)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, (4, 28, 28), bytes(range(256)) * 12)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="images.gz: not a complete gzip file"):
        read_idx(path, 3)


def test_bad_magic_number(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, (10,), bytes(10))
    with pytest.raises(DataError, match="bad IDX magic number 00000801: expected 00000803"):
        read_idx(path, 3)


# -- <root>/fashion-mnist: used when it exists, never silently replaced by the system copy ----------
def _folder_error(tmp_path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fashion_mnist.find_fashion_mnist_dir(tmp_path, **kwargs)
    message = str(info.value)
    folder = tmp_path / "fashion-mnist"
    assert str(folder) in message and "zalandoresearch/fashion-mnist" in message
    assert "\n" not in message
    return message


def test_an_empty_root_folder_is_an_error_not_a_fall_back(tmp_path):
    (tmp_path / "fashion-mnist").mkdir()
    message = _folder_error(tmp_path)
    assert "holds none of the Fashion-MNIST files" in message
    assert f"or remove {tmp_path / 'fashion-mnist'} to use the system copy in {fashion_mnist.SYSTEM_DIR}" in message


def test_a_file_named_fashion_mnist_is_an_error(tmp_path):
    (tmp_path / "fashion-mnist").write_text("not a folder")
    assert "is a file, not a folder" in _folder_error(tmp_path)


def test_a_folder_in_place_of_a_data_file_is_named(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in fashion_mnist.FILES[1:]:
        write_idx(folder / name, (1,), b"\x00")
    (folder / fashion_mnist.TRAIN_IMAGES).mkdir()
    assert f"{folder / fashion_mnist.TRAIN_IMAGES} is not a file" in _folder_error(tmp_path)


def test_an_unreadable_root_folder_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    listdir = fashion_mnist.os.listdir

    def denied(path):
        if str(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return listdir(path)

    monkeypatch.setattr(fashion_mnist.os, "listdir", denied)
    assert "cannot list the Fashion-MNIST folder (permission denied)" in _folder_error(tmp_path)


def test_an_unreadable_data_file_is_named(tmp_path, monkeypatch):
    from nas_impl.data import checksums

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name in fashion_mnist.FILES:
        write_idx(folder / name, (1,), b"\x00")

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checksums, "open", denied, raising=False)
    checksums.clear_digest_cache()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: cannot be read \(permission denied\)"):
        load_fashion_mnist(tmp_path)


def test_only_a_missing_root_folder_falls_back_to_the_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "system"
    system.mkdir()
    write_idx(system / fashion_mnist.TRAIN_IMAGES, (1,), b"\x00")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    root = tmp_path / "root"
    root.mkdir()
    assert fashion_mnist.find_fashion_mnist_dir(root) == system
    (root / "fashion-mnist").mkdir()
    with pytest.raises(DataError, match="holds none of the Fashion-MNIST files"):
        fashion_mnist.find_fashion_mnist_dir(root)
    with pytest.raises(DataError, match="Fashion-MNIST not found"):
        fashion_mnist.find_fashion_mnist_dir(tmp_path / "elsewhere", search_system=False)
