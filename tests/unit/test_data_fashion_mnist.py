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
        load_fashion_mnist(tmp_path, search_system=False)
    message = str(info.value)
    assert str(folder / fashion_mnist.TRAIN_IMAGES) in message and "not found" in message
    assert "dataset-fashion-mnist" in message and "zalandoresearch/fashion-mnist" in message


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
