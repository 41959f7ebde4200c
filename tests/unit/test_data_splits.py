import numpy as np
import pytest
import torch

from nas_impl.data import SplitRecord, holdout, split_halves, subset
from nas_impl.errors import DataError

BALANCED = torch.arange(1000) % 10  # 100 per class
UNBALANCED = torch.tensor([0] * 57 + [1] * 31 + [2] * 12)


def counts(labels, idx, num_classes):
    return torch.bincount(labels[idx], minlength=num_classes).tolist()


def assert_partition(a, b, n):
    assert a.dtype == b.dtype == torch.int64
    assert torch.equal(a, a.sort().values) and torch.equal(b, b.sort().values)
    assert torch.equal(torch.cat([a, b]).sort().values, torch.arange(n))  # disjoint and covering


def test_split_halves_balanced():
    a, b = split_halves(BALANCED, seed=0)
    assert_partition(a, b, 1000)
    assert counts(BALANCED, a, 10) == [50] * 10 == counts(BALANCED, b, 10)


def test_split_halves_odd_classes():
    a, b = split_halves(UNBALANCED, seed=3)
    assert_partition(a, b, 100)
    assert len(a) == 50
    for ca, cb in zip(counts(UNBALANCED, a, 3), counts(UNBALANCED, b, 3)):
        assert abs(ca - cb) <= 1


def test_holdout_exact_balance_and_remainder():
    train, val = holdout(BALANCED, 200, seed=1)
    assert_partition(train, val, 1000)
    assert counts(BALANCED, val, 10) == [20] * 10
    _, val = holdout(BALANCED, 203, seed=1)  # remainder: one more each for the first classes
    assert counts(BALANCED, val, 10) == [21, 21, 21] + [20] * 7
    _, val = holdout(UNBALANCED, 10, seed=1)  # proportional: 5.7, 3.1, 1.2 -> 6, 3, 1
    assert counts(UNBALANCED, val, 3) == [6, 3, 1]


def test_subset_and_input_types():
    idx = subset(BALANCED.numpy(), 30, seed=2)
    assert len(idx) == 30 and counts(BALANCED, idx, 10) == [3] * 10
    assert torch.equal(subset(BALANCED.tolist(), 30, seed=2), idx)


def test_deterministic_per_seed_and_different_across_seeds():
    assert all(torch.equal(x, y) for x, y in zip(split_halves(BALANCED, 5), split_halves(BALANCED, 5)))
    assert not torch.equal(split_halves(BALANCED, 5)[0], split_halves(BALANCED, 6)[0])
    assert torch.equal(holdout(BALANCED, 100, 7)[1], holdout(BALANCED, 100, 7)[1])
    assert not torch.equal(holdout(BALANCED, 100, 7)[1], holdout(BALANCED, 100, 8)[1])


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    split_halves(BALANCED, 0)
    assert torch.equal(torch.rand(3), expected)


def test_size_too_large_and_bad_labels():
    with pytest.raises(DataError, match="cannot take 1001 examples from a dataset of 1000"):
        holdout(BALANCED, 1001, seed=0)
    with pytest.raises(DataError, match="1-D integer"):
        subset(np.zeros(4, dtype=np.float32), 2, seed=0)


def test_split_record():
    train, val = holdout(BALANCED, 100, seed=0)
    record = SplitRecord.create("cifar10", 0, {"train": len(train), "val": len(val)}, train, val)
    assert record.to_dict() == {"dataset": "cifar10", "seed": 0, "sizes": {"train": 900, "val": 100},
                                "fingerprint": record.fingerprint}
    assert len(record.fingerprint) == 16
    assert record == SplitRecord.create("cifar10", 0, {"train": len(train), "val": len(val)}, train, val)
    other = holdout(BALANCED, 100, seed=1)
    assert SplitRecord.create("cifar10", 1, {"train": 900, "val": 100}, *other).fingerprint != record.fingerprint
