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
