"""The digits split is stratified and fixed; the batches are a seeded reshuffle per epoch."""

import numpy as np
import pytest

from mlp.data import batches, load_digits_split, n_batches


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


def test_split_sizes_scaling_and_disjointness(split):
    assert split.x_train.shape == (1437, 64) and split.x_test.shape == (360, 64)
    assert split.x_train.min() == 0.0 and split.x_train.max() == 1.0  # pixels 0..16, divided by 16
    assert split.y_train.dtype == np.int64 and set(np.unique(split.y_test)) == set(range(10))
    both = np.concatenate([split.train_index, split.test_index])
    assert sorted(both.tolist()) == list(range(1797))  # every image exactly once


def test_split_is_stratified(split):
    """Each class's test share is its overall share, to within one image."""
    train_counts = np.bincount(split.y_train, minlength=10)
    test_counts = np.bincount(split.y_test, minlength=10)
    total = train_counts + test_counts
    expected_test = total * len(split.y_test) / total.sum()  # (10,)
    assert np.all(np.abs(test_counts - expected_test) <= 1), (test_counts, expected_test)
    expected_train = total * len(split.y_train) / total.sum()
    assert np.all(np.abs(train_counts - expected_train) <= 1)


def test_split_is_fixed_for_a_seed(split):
    again = load_digits_split()
    np.testing.assert_array_equal(split.test_index, again.test_index)
    np.testing.assert_array_equal(split.x_train, again.x_train)
    other = load_digits_split(seed=1)
    assert not np.array_equal(split.test_index, other.test_index)
    assert len(load_digits_split(test_fraction=0.5).y_test) == 899  # ceil(0.5 * 1797)


def test_bad_test_fraction_is_refused():
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(test_fraction=1.0)


def test_batches_cover_every_index_once_in_a_seeded_order():
    epoch0 = list(batches(100, 32, seed=7, epoch=0))
    assert [len(b) for b in epoch0] == [32, 32, 32, 4] and n_batches(100, 32) == 4
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(100))
    again = list(batches(100, 32, seed=7, epoch=0))
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, again, strict=True))
    epoch1 = np.concatenate(list(batches(100, 32, seed=7, epoch=1)))
    other_seed = np.concatenate(list(batches(100, 32, seed=8, epoch=0)))
    assert not np.array_equal(np.concatenate(epoch0), epoch1)
    assert not np.array_equal(np.concatenate(epoch0), other_seed)
