"""Text augmentation for classifiers: more training sentences made from the ones you have.

With few labels a classifier memorises its sentences word by word. Easy data augmentation
(Wei & Zou, 2019) makes extra copies of each training sentence, each changed a little, with the
same label: the label of "a gripping , well-acted film" does not change if two words swap
places, one word goes missing or an extra word appears. The model is pushed to read the
sentence as a whole rather than one exact string. Three operations, one per copy, chosen at
random; each changes about `alpha` of the sentence's words (at least one):

    swap    two words trade places             a well-acted , gripping film
    delete  each word dropped with p = alpha   a gripping well-acted film
    insert  a word from the training text      a gripping , well-acted dull film
            put at a random place

Left out: EDA's synonym replacement (it needs WordNet, a download this project cannot make
offline), and back-translation through the project's own translators, which only go between
German and English captions and would turn a film review into a caption-like paraphrase.

Only training rows are augmented, never the rows a checkpoint is chosen on or reported on. The
copies follow from the seed, so a resumed run trains on the same rows.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

from shared.config import option

OPERATIONS = ("swap", "delete", "insert")


@dataclass
class AugmentConfig:
    copies: int = option(0, "augmented copies of each training sentence (0: off)", ge=0)
    alpha: float = option(0.1, "share of a sentence's words each copy changes", gt=0, le=0.5)


def swap_words(words: list[str], n: int, rng: random.Random) -> list[str]:
    words = list(words)
    for _ in range(n if len(words) > 1 else 0):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return words


def delete_words(words: list[str], p: float, rng: random.Random) -> list[str]:
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(words)]  # never an empty sentence


def insert_words(words: list[str], n: int, vocabulary: Sequence[str],
                 rng: random.Random) -> list[str]:  # fmt: skip
    words = list(words)
    for _ in range(n):
        words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary))
    return words


def augment_sentence(sentence: str, vocabulary: Sequence[str], alpha: float,
                     rng: random.Random) -> str:  # fmt: skip
    """One changed copy of `sentence`: one operation, about `alpha` of its words."""
    words = sentence.split()
    if not words:
        return sentence
    n = max(1, round(alpha * len(words)))
    operation = rng.choice(OPERATIONS)
    if operation == "swap":
        words = swap_words(words, n, rng)
    elif operation == "delete":
        words = delete_words(words, alpha, rng)
    else:
        words = insert_words(words, n, vocabulary, rng)
    return " ".join(words)


def augment_rows(sentences: Sequence[str], labels: Sequence, cfg: AugmentConfig,
                 seed: int) -> tuple[list[str], list]:  # fmt: skip
    """The rows followed by `cfg.copies` changed copies of each, with the same labels.

    The inserted words come from the training sentences themselves, weighted by how often
    they occur there, so an insertion is a plausible word, never an unknown one.
    """
    sentences, labels = list(sentences), list(labels)
    if cfg.copies == 0:
        return sentences, labels
    rng = random.Random(f"augment-{seed}")
    vocabulary = [word for sentence in sentences for word in sentence.split()]
    if not vocabulary:
        return sentences, labels
    out_sentences, out_labels = list(sentences), list(labels)
    for sentence, label in zip(sentences, labels, strict=True):
        for _ in range(cfg.copies):
            out_sentences.append(augment_sentence(sentence, vocabulary, cfg.alpha, rng))
            out_labels.append(label)
    return out_sentences, out_labels
