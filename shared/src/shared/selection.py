"""Which training rows to hold out for choosing a checkpoint, so the choice tracks the report.

A stage that reports on a dev set must not choose its checkpoint with the dev labels, so it
holds some training rows out and chooses on those. That is only as good as those rows are
like the dev set. SST-2's training split is mostly short phrases cut from parse trees ("the
film", "is n't bad"), while its dev set is whole sentences: selection rows drawn at random were
94-96% right while the dev set sat at 89-90%, and the curves peaked thousands of steps apart,
so the step kept was not the step that scored best on what is reported.

`length_matched` draws the selection rows so their lengths in words follow the reported split's
lengths. It reads only the reported split's text, never its labels: the lengths of the
sentences you will be judged on are known in advance, the answers are not.

Length is not all. SST-2's training split holds every phrase of its sentences, each with its
own label, so a whole training sentence held out still has its pieces in training: 931 of
1,000 length-matched rows contain a training row of 4 or more words, against 23 of the 872 dev
sentences. A model that memorises phrases then scores well on such rows and not on dev. So
`phrases_inside` finds the training rows that occur inside a held-out row, and the stages drop
them from training (about 6 a sentence): the selection rows are then new text, like dev.
"""

import random
from collections import defaultdict
from collections.abc import Sequence


def word_count(text: str) -> int:
    return len(text.split())


def length_matched(
    train_texts: Sequence[str], target_texts: Sequence[str], n: int, seed: int
) -> list[int]:
    """`n` distinct indices into `train_texts` whose word counts follow `target_texts`' counts.

    For each of `n` lengths drawn (with replacement) from the target's, take an unused training
    row of that length; where none is left, the nearest length that has one. The draw is fixed
    by `seed`.
    """
    if n > len(train_texts):
        raise ValueError(f"cannot hold out {n} of {len(train_texts)} rows")
    rng = random.Random(seed)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, text in enumerate(train_texts):
        by_length[word_count(text)].append(index)
    for indices in by_length.values():
        rng.shuffle(indices)
    wanted = rng.choices([word_count(t) for t in target_texts], k=n) if target_texts else []
    chosen: list[int] = []
    for length in wanted:
        nearest = min(by_length, key=lambda have: (abs(have - length), have))
        chosen.append(by_length[nearest].pop())
        if not by_length[nearest]:
            del by_length[nearest]
    return chosen


def phrases_inside(train_texts: Sequence[str], held: Sequence[int], min_words: int = 3) -> set[int]:
    """Indices of training rows (not held) of at least `min_words` words that occur, word for
    word, inside a held-out row. Shorter rows ("the film") are common to any text; they stay."""
    spans: set[str] = set()
    for index in held:
        words = train_texts[index].split()
        for start in range(len(words)):
            for end in range(start + min_words, len(words) + 1):
                spans.add(" ".join(words[start:end]))
    taken = set(held)
    return {
        i
        for i, text in enumerate(train_texts)
        if i not in taken and word_count(text) >= min_words and " ".join(text.split()) in spans
    }


def held_out_like(
    train_texts: Sequence[str], target_texts: Sequence[str], n: int, seed: int
) -> tuple[list[int], set[int]]:
    """(the `n` selection rows, drawn with the target's lengths; the training rows found inside
    them, which training must leave out): the draw bert and the transformer classifier use."""
    held = length_matched(train_texts, target_texts, n, seed)
    inside = phrases_inside(train_texts, held)
    print(f"{len(inside):,} training rows that occur inside a selection row are left out of "
          "training")  # fmt: skip
    return held, inside
