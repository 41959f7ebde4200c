import hashlib

import numpy as np
import pytest
import torch

from nas_impl.data import load_dataset
from nas_impl.data.npz import load_npz_dataset
from nas_impl.errors import DataError


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_shards(folder, shape=(8, 8, 3)):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, split, n in (("b_train.npz", "train", 5), ("a_train.npz", "train", 3), ("test.npz", "test", 4)):
        x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        y = rng.integers(0, 4, n).astype(np.uint8)
        np.savez_compressed(folder / name, **{f"x_{split}": x, f"y_{split}": y})
        arrays[name] = (x, y)
    return arrays


def test_shards_concatenated_in_sorted_order_as_nchw(tmp_path):
    arrays = make_shards(tmp_path)
    data = load_npz_dataset(tmp_path, num_classes=4)
    x_train = np.concatenate([arrays["a_train.npz"][0], arrays["b_train.npz"][0]])
    assert data.train_x.shape == (8, 3, 8, 8) and data.test_x.shape == (4, 3, 8, 8)
    assert torch.equal(data.train_x, torch.from_numpy(x_train).permute(0, 3, 1, 2))
    assert data.train_x.is_contiguous() and data.train_y.dtype == torch.int64
    assert data.train_y.tolist() == [*arrays["a_train.npz"][1], *arrays["b_train.npz"][1]]
    assert data.name == f"npz:{tmp_path}" and data.classes == ("0", "1", "2", "3")


def test_grayscale_nhw(tmp_path):
    make_shards(tmp_path, shape=(6, 5))
    data = load_npz_dataset(tmp_path, num_classes=4)
    assert data.input_size == (1, 6, 5)


def test_sha256sums_file_verified(tmp_path):
    make_shards(tmp_path)
    lines = [f"{sha256(tmp_path / n)}  {n}" for n in ("a_train.npz", "b_train.npz", "test.npz")]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    assert len(load_npz_dataset(tmp_path, num_classes=4).train_x) == 8
    bad = lines[2].replace(lines[2][:64], "f" * 64)
    (tmp_path / "SHA256SUMS").write_text("\n".join([*lines[:2], bad]) + "\n")
    expected = f"test.npz: wrong sha256 checksum: expected {'f' * 64}, got {sha256(tmp_path / 'test.npz')}"
    with pytest.raises(DataError, match=expected):
        load_npz_dataset(tmp_path)


def test_expected_sha256_argument(tmp_path):
    make_shards(tmp_path)
    table = {n: sha256(tmp_path / n) for n in ("a_train.npz", "b_train.npz", "test.npz")}
    load_npz_dataset(tmp_path, expected_sha256=table)
    with pytest.raises(DataError, match=r"shards \['test.npz'\] have no pinned sha256"):
        load_npz_dataset(tmp_path, expected_sha256={k: v for k, v in table.items() if k != "test.npz"})
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_npz_dataset(tmp_path, expected_sha256={**table, "missing.npz": "0" * 64})


def test_missing_key(tmp_path):
    make_shards(tmp_path)
    np.savez(tmp_path / "c_train.npz", x_train=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="c_train.npz: has 'x_train' but is missing key 'y_train'"):
        load_npz_dataset(tmp_path)


def test_no_known_keys(tmp_path):
    make_shards(tmp_path)
    np.savez(tmp_path / "c_train.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"c_train.npz: missing keys: expected x_train/y_train .* found \['images'\]"):
        load_npz_dataset(tmp_path)


def test_length_mismatch(tmp_path):
    make_shards(tmp_path)
    np.savez(tmp_path / "c_train.npz", x_train=np.zeros((2, 8, 8, 3), np.uint8), y_train=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="c_train.npz: 'x_train' holds 2 images but 'y_train' holds 3 labels"):
        load_npz_dataset(tmp_path)


def test_wrong_dtype(tmp_path):
    make_shards(tmp_path)
    np.savez(tmp_path / "c_train.npz", x_train=np.zeros((2, 8, 8, 3), np.float32), y_train=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="c_train.npz: 'x_train' must be uint8"):
        load_npz_dataset(tmp_path)


def test_missing_directory_and_no_test_split(tmp_path):
    with pytest.raises(DataError, match="directory .*nowhere not found"):
        load_dataset(f"npz:{tmp_path / 'nowhere'}")
    make_shards(tmp_path)
    (tmp_path / "test.npz").unlink()
    with pytest.raises(DataError, match="no shard in .* holds x_test/y_test"):
        load_npz_dataset(tmp_path)


def test_corrupt_shard(tmp_path):
    make_shards(tmp_path)
    (tmp_path / "test.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="test.npz: not a readable .npz file"):
        load_npz_dataset(tmp_path)


def test_a_file_in_place_of_the_directory_and_an_unreadable_shard(tmp_path):
    (tmp_path / "shards").write_text("not a folder")
    with pytest.raises(DataError, match=r"directory .*shards is a file, not a folder"):
        load_npz_dataset(tmp_path / "shards")
    folder = tmp_path / "dir"
    make_shards(folder)
    (folder / "c.npz").mkdir()  # a folder that looks like a shard
    with pytest.raises(DataError, match=r"c\.npz: cannot be read \(it is a folder, not a file\)"):
        load_npz_dataset(folder, num_classes=4)
