"""The data: scikit-learn's 8x8 handwritten digits, a fixed split, and seeded mini-batches.

    digits = load_digits_split()                 # 1437 training and 360 test images
    for idx in batches(len(digits.y_train), batch_size=32, seed=0, epoch=0):
        x, y = digits.x_train[idx], digits.y_train[idx]   # (32, 64), (32,)

The digits ship inside scikit-learn (1797 images, about 180 per class), so nothing is
downloaded. Each image is 8x8 pixels with integer intensities 0..16; we flatten it to 64
numbers and divide by 16 so inputs lie in [0, 1], the range the default initialisation of a
Linear layer expects (inputs of size ~1 give pre-activations of size ~1).

Why the batches come from here and not from each framework: both backends (micrograd and
torch) call `batches()`, so with the same seed they see the same images in the same order,
and their losses can be compared step by step. A fresh permutation per epoch comes from a
generator seeded with (seed, epoch), so epoch 7 is the same whether or not epochs 0..6 ran.

Left out: augmentation, a validation split (the test split doubles as one here, which is fine
for learning how training works but not for choosing hyperparameters honestly).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

N_FEATURES = 64  # 8x8 pixels, flattened
N_CLASSES = 10  # the digits 0..9
SPLIT_SEED = 0  # fixed, so every training seed is scored on the same test images


@dataclass
class DigitsSplit:
    """The digits split into train and test, with where each row came from."""

    x_train: np.ndarray  # (N_train, 64) float64 in [0, 1]
    y_train: np.ndarray  # (N_train,) int64 in 0..9
    x_test: np.ndarray  # (N_test, 64)
    y_test: np.ndarray  # (N_test,)
    train_index: np.ndarray  # (N_train,) row numbers in load_digits() order
    test_index: np.ndarray  # (N_test,)


def load_digits_split(test_fraction: float = 0.2, seed: int = SPLIT_SEED) -> DigitsSplit:
    """Load the digits, scale pixels to [0, 1], and split them, stratified by class.

    Stratified means each class keeps its share in both halves (a test set that happened to
    hold few 8s would make the accuracy noisier). The same `seed` gives the same split.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0  # (1797, 64) in [0, 1]
    y = digits.target.astype(np.int64)  # (1797,)
    index = np.arange(len(y))
    train_index, test_index = train_test_split(
        index, test_size=test_fraction, stratify=y, random_state=seed
    )
    return DigitsSplit(
        x_train=x[train_index],
        y_train=y[train_index],
        x_test=x[test_index],
        y_test=y[test_index],
        train_index=train_index,
        test_index=test_index,
    )


def batches(n: int, batch_size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Index arrays that cover range(n) once, in a random order fixed by (seed, epoch).

    The last batch is smaller when batch_size does not divide n (it is kept, not dropped, so
    every training image is seen once per epoch).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)  # (n,)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]  # (batch_size,) or fewer at the end


def n_batches(n: int, batch_size: int) -> int:
    """How many batches `batches()` yields per epoch."""
    return -(-n // batch_size)  # ceiling division
