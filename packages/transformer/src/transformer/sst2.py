"""SST-2 as tensors: a word vocabulary from the training split, a Dataset, and a collate_fn.

The mirror's sentences are already lower-cased and tokenized with spaces ("it 's a charming
and often affecting journey ."), so a word is whatever lies between spaces; `eval` applies the
same lower-casing and splitting to any `sentence<TAB>label` file. The vocabulary (attention
stage's `Vocab`: <pad>=0, <bos>, <eos>, <unk>, then words by frequency) is built from the
training split only: a dev word never seen in training becomes <unk>, as it would in real use.

Dynamic padding: `collate_fn` pads a batch to its own longest sentence, not to a global maximum,
and returns the padding mask the encoder needs (True at padding, torch's key_padding_mask).
SST-2's training rows are mostly short phrases (median 7 words, some over 50), so
`length_grouped_batches` (from `shared.epochs`, which every stage's epochs use) also puts
sentences of similar length together (shuffle, sort within chunks of 50 batches, shuffle the
batches): far less padding, the same randomness per epoch.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from attention.vocab import PAD, Vocab
from shared.epochs import length_grouped_batches  # noqa: F401 (this stage's name for it)
from shared.errors import UsageError


def words(sentence: str) -> list[str]:
    return sentence.lower().split()


def build_vocab(sentences: Sequence[str], min_freq: int = 1) -> Vocab:
    return Vocab.build((words(s) for s in sentences), min_freq)


class SentimentDataset(Dataset):
    """(sentence ids, label) pairs; sentences longer than max_len words are cut."""

    def __init__(
        self, sentences: Sequence[str], labels: Sequence[int], vocab: Vocab, max_len: int = 512
    ) -> None:
        if len(sentences) != len(labels):
            raise ValueError(f"{len(sentences)} sentences but {len(labels)} labels")
        self.sentences = list(sentences)
        self.labels = [int(y) for y in labels]
        self.ids = [vocab.encode(words(s), eos=False)[:max_len] or [PAD] for s in self.sentences]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]


def collate_fn(batch: Sequence[tuple[list[int], int]]) -> dict[str, Tensor]:
    """Pad to the batch's longest sentence: input_ids (B, T), padding_mask (B, T), labels (B,)."""
    longest = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), longest), PAD, dtype=torch.long)  # (B, T)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    lengths = torch.tensor([len(ids) for ids, _ in batch])  # (B,)
    padding_mask = torch.arange(longest).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
    labels = torch.tensor([y for _, y in batch], dtype=torch.long)  # (B,)
    return {"input_ids": input_ids, "padding_mask": padding_mask, "labels": labels}


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """`sentence<TAB>label` lines (an optional header line is skipped); labels 0 or 1."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--data {path} does not exist; give a sentence<TAB>label file")
    sentences, labels = [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        sentence, tab, label = line.rpartition("\t")
        if number == 1 and label.strip().lower() == "label":
            continue  # a header
        if not tab or label.strip() not in ("0", "1"):
            raise UsageError(
                f"{path}:{number} is not `sentence<TAB>label` with label 0 or 1: {line[:60]!r}"
            )
        sentences.append(sentence)
        labels.append(int(label))
    if not sentences:
        raise UsageError(f"{path} holds no sentence<TAB>label lines")
    return sentences, labels
