"""CIFAR readers on tiny hand-made files in the official pickle format."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch

from nas_impl.data.cifar import CIFAR10, CIFAR100, load_cifar10, load_cifar100
from nas_impl.errors import DataError

PER_BATCH = 4


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_batch(rng, labels_key, num_classes, seed_label):
    labels = [(seed_label + i) % num_classes for i in range(PER_BATCH)]
    batch = {
        b"batch_label": b"fake batch",
        labels_key: labels,
        b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(PER_BATCH)],
    }
    if labels_key == b"fine_labels":
        batch[b"coarse_labels"] = [label // 5 for label in labels]
    return batch


def write_fake_cifar(layout, folder):
    """Write the members of `layout` (protocol-2 pickles, like the originals) into `folder`."""
    rng = np.random.default_rng(0)
    num_classes = 10 if layout is CIFAR10 else 100
    folder.mkdir(parents=True)
    batches = {}
    for i, member in enumerate((*layout.train_members, *layout.test_members)):
        batches[member] = fake_batch(rng, layout.labels_key, num_classes, i)
        (folder / member).write_bytes(pickle.dumps(batches[member], protocol=2))
    meta = {layout.names_key: [f"class{i}".encode() for i in range(num_classes)]}
    (folder / layout.meta_member).write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def expected_images(batches, members):
    return torch.from_numpy(np.concatenate([batches[m][b"data"] for m in members]).reshape(-1, 3, 32, 32))


def make_tarball(layout, root):
    staging = root / "staging"
    batches = write_fake_cifar(layout, staging / layout.folder)
    archive = root / layout.archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / layout.folder, arcname=layout.folder)
    return archive, batches


@pytest.mark.parametrize("layout,loader", [(CIFAR10, load_cifar10), (CIFAR100, load_cifar100)])
def test_tarball(tmp_path, layout, loader):
    archive, batches = make_tarball(layout, tmp_path)
    data = loader(tmp_path, md5={layout.archive: md5(archive)})
    n_train = PER_BATCH * len(layout.train_members)
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (PER_BATCH, 3, 32, 32)
    assert torch.equal(data.train_x, expected_images(batches, layout.train_members))
    assert torch.equal(data.test_x, expected_images(batches, layout.test_members))
    assert data.train_y.tolist() == [y for m in layout.train_members for y in batches[m][layout.labels_key]]
    assert data.train_y.dtype == torch.int64
    assert data.num_classes == (10 if layout is CIFAR10 else 100) and data.classes[1] == "class1"
    pixels = data.train_x.double() / 255
    assert data.mean == pytest.approx(tuple(pixels.mean(dim=(0, 2, 3)).tolist()), abs=1e-12)


@pytest.mark.parametrize("layout,loader", [(CIFAR10, load_cifar10), (CIFAR100, load_cifar100)])
def test_extracted_batches(tmp_path, layout, loader):
    folder = tmp_path / layout.folder
    batches = write_fake_cifar(layout, folder)
    table = {member: md5(folder / member) for member in (*batches, layout.meta_member)}
    data = loader(tmp_path, md5=table)
    assert torch.equal(data.train_x, expected_images(batches, layout.train_members))
    assert data.test_y.tolist() == batches[layout.test_members[0]][layout.labels_key]


def test_tarball_wrong_checksum_against_published_table(tmp_path):
    archive, _ = make_tarball(CIFAR10, tmp_path)
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert str(archive) in message and "c58f30108f718f92721af3b95e74349a" in message and md5(archive) in message
    assert "cifar-10-python.tar.gz" in message and "https://www.cs.toronto.edu/" in message


def test_extracted_wrong_checksum_against_published_table(tmp_path):
    folder = tmp_path / CIFAR100.folder
    write_fake_cifar(CIFAR100, folder)
    expected = "cifar-100-python/train: wrong md5 checksum: expected 16019d7e3df5f24257cddd939b257f8d"
    with pytest.raises(DataError, match=expected):
        load_cifar100(tmp_path)


def test_missing_dataset_names_both_locations(tmp_path):
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


def test_missing_member_in_extracted_folder(tmp_path):
    folder = tmp_path / CIFAR10.folder
    write_fake_cifar(CIFAR10, folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py: files \['data_batch_3'\] not found"):
        load_cifar10(tmp_path)


def test_malformed_batch(tmp_path):
    folder = tmp_path / CIFAR10.folder
    write_fake_cifar(CIFAR10, folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    table = {member: md5(folder / member) for member in CIFAR10.md5 if (folder / member).exists()}
    with pytest.raises(DataError, match=r"test_batch: expected uint8 data of shape \(N, 3072\)"):
        load_cifar10(tmp_path, md5=table)


def test_a_folder_in_place_of_a_batch_is_named(tmp_path):
    folder = tmp_path / CIFAR10.folder
    write_fake_cifar(CIFAR10, folder)
    table = {member: md5(folder / member) for member in CIFAR10.md5 if (folder / member).exists()}
    (folder / "data_batch_2").unlink()
    (folder / "data_batch_2").mkdir()
    with pytest.raises(DataError, match=r"data_batch_2: is a folder, not a file\. Download"):
        load_cifar10(tmp_path, md5=table)


def test_a_folder_in_place_of_the_archive_is_named(tmp_path):
    (tmp_path / CIFAR10.archive).mkdir()
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: is a folder, not a file"):
        load_cifar10(tmp_path)
