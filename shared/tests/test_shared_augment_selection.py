"""Selection rows with the reported split's lengths, and word-level augmentation."""

import random
import statistics

import pytest

from shared.augment import AugmentConfig, augment_rows, augment_sentence
from shared.selection import length_matched, phrases_inside, word_count


def _phrases_and_sentences(seed: int = 0) -> tuple[list[str], list[str]]:
    """A training split of mostly short phrases (SST-2's shape) and a dev split of sentences."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(50)]
    train = [" ".join(rng.choices(words, k=rng.choice([1, 2, 3, 4, 20]))) for _ in range(3000)]
    dev = [" ".join(rng.choices(words, k=rng.randint(12, 28))) for _ in range(200)]
    return train, dev


def test_length_matched_rows_follow_the_target_not_the_training_split():
    train, dev = _phrases_and_sentences()
    chosen = length_matched(train, dev, 300, seed=1)
    assert len(set(chosen)) == 300 and all(0 <= i < len(train) for i in chosen)
    mean = statistics.mean(word_count(train[i]) for i in chosen)
    assert statistics.mean(map(word_count, train)) < 7  # random rows would be this short
    assert abs(mean - statistics.mean(map(word_count, dev))) < 2.5  # the nearest lengths
    assert length_matched(train, dev, 300, seed=1) == chosen  # the seed fixes the draw
    assert length_matched(train, dev, 300, seed=2) != chosen
    with pytest.raises(ValueError):
        length_matched(train[:10], dev, 11, seed=0)


def test_augmented_copies_keep_labels_and_change_about_alpha_of_the_words():
    sentences = [" ".join(f"w{i}" for i in range(n, n + 10)) for n in range(0, 200, 10)]
    labels = [i % 2 for i in range(len(sentences))]
    cfg = AugmentConfig(copies=3, alpha=0.2)
    out, out_labels = augment_rows(sentences, labels, cfg, seed=0)
    assert out[: len(sentences)] == sentences  # the originals first, unchanged
    assert len(out) == 4 * len(sentences) and out_labels[len(sentences):] == [
        y for y in labels for _ in range(3)
    ]  # fmt: skip
    vocabulary = {w for s in sentences for w in s.split()}
    changed, shorter = 0, []
    for i, copy in enumerate(out[len(sentences) :]):
        original = sentences[i // 3].split()
        words = copy.split()
        assert set(words) <= vocabulary and words  # only known words, never empty
        assert len(words) <= 12  # an insertion adds 20% of 10 words
        changed += words != original
        if len(words) < 10:
            shorter.append(len(words))
    assert changed >= 0.9 * 3 * len(sentences)
    assert 7 <= statistics.mean(shorter) <= 8.5  # each word deleted with p = 0.2
    assert augment_rows(sentences, labels, cfg, seed=0) == (out, out_labels)  # reproducible
    assert augment_rows(sentences, labels, cfg, seed=1)[0] != out
    assert augment_rows(sentences, labels, AugmentConfig(copies=0), 0) == (sentences, labels)


def test_each_operation_does_what_it_says():
    rng = random.Random(0)
    seen = set()
    for _ in range(60):
        copy = augment_sentence("a b c d e f g h i j", ["z"], 0.2, rng).split()
        if len(copy) == 10 and sorted(copy) == list("abcdefghij"):
            seen.add("swap")
        elif len(copy) < 10:
            seen.add("delete")
            assert copy == [w for w in "abcdefghij" if w in copy]  # the order kept
        else:
            seen.add("insert")
            assert copy.count("z") == 2
    assert seen == {"swap", "delete", "insert"}


def test_phrases_inside_a_selection_row_are_found_word_for_word():
    train = ["a  good film , really", "good film ,", "good film", "film , really", "a good",
             "bad film , really", "goodfilm , really"]  # fmt: skip
    assert phrases_inside(train, [0]) == {1, 3}  # 3+ words, on word boundaries, spacing ignored
    assert phrases_inside(train, [0], min_words=2) == {1, 2, 3, 4}
    assert phrases_inside(train, [0, 1]) == {3}  # a held row is never "inside"
