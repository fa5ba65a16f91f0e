"""The translation data both translator stages read: vocabularies, ids, padding, batches."""

import random

import pytest
import torch

from attention.translation_data import (
    batches,
    build_vocabs,
    collate_pairs,
    encode_pairs,
    pad,
    read_pairs,
)
from attention.vocab import BOS, EOS, PAD, UNK
from shared.errors import UsageError

PAIRS = [
    ("Ein Hund läuft.", "A dog runs."),
    ("Ein Mann läuft.", "A man runs."),
    ("Zwei Hunde spielen im Schnee.", "Two dogs play in the snow."),
    ("", "Nothing."),
]


def test_vocabularies_separate_or_joint():
    src, tgt = build_vocabs(PAIRS, min_freq=2)
    assert src.tokens[4:] == [".", "Ein", "läuft"]  # most frequent first, ties alphabetical
    assert tgt.tokens[4:] == [".", "A", "runs"]
    both, again = build_vocabs(PAIRS, min_freq=2, joint=True)
    assert both is again and {"Ein", "A", "läuft", "runs", "."} <= set(both.tokens)


def test_encode_pairs_drops_long_and_empty_pairs_only_with_max_len():
    src, tgt = build_vocabs(PAIRS, min_freq=1)
    kept = encode_pairs(PAIRS, src, tgt, max_len=4)
    assert len(kept) == 2  # the 6-word pair and the empty source are dropped
    s, t = kept[0]
    assert src.decode(s) == ["Ein", "Hund", "läuft", "."] and t[-1] == EOS and EOS not in s
    everything = encode_pairs(PAIRS, src, tgt)
    assert len(everything) == 4 and everything[3][0] == [PAD]  # an empty source keeps a column
    small, _ = build_vocabs(PAIRS, min_freq=2)
    assert encode_pairs(PAIRS[:1], small, tgt)[0][0] == [5, UNK, 6, 4]  # Ein Hund läuft .


def test_pad_batches_and_teacher_forcing():
    assert pad([[5, 6, 7], [8]]).tolist() == [[5, 6, 7], [8, PAD, PAD]]
    examples = [([4 + i] * (1 + i % 5), [4] * (1 + i % 3) + [EOS]) for i in range(40)]
    seen = []
    for src, tgt in batches(examples, 8, random.Random(0)):
        assert src.shape[0] == tgt.shape[0] <= 8
        lengths = (src != PAD).sum(1)
        assert int(lengths.max() - lengths.min()) <= 4
        seen += [int(s[0]) for s in src]
    assert sorted(seen) == [4 + i for i in range(40)]  # every example once
    batch = collate_pairs([([5, 6], [7, EOS]), ([5], [8, 9, EOS])])
    assert batch["tgt_in"].tolist() == [[BOS, 7, EOS], [BOS, 8, 9]]  # tgt_out masks it
    assert batch["tgt_out"].tolist() == [[7, EOS, PAD], [8, 9, EOS]]
    assert torch.equal(batch["src"], pad([[5, 6], [5]]))


def test_read_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Ein Hund.\tA dog.\n\nZwei.\tTwo.\n", encoding="utf-8")
    assert read_pairs(path) == [("Ein Hund.", "A dog."), ("Zwei.", "Two.")]
    path.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"pairs.tsv:1 is not `German<TAB>English`"):
        read_pairs(path)
    with pytest.raises(UsageError, match="does not exist"):
        read_pairs(tmp_path / "missing.tsv")
