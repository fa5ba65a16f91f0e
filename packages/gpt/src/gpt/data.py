"""The text a language model learns from: a dataset, a tokenizer, and random windows of ids.

    splits, name = load_text("tinyshakespeare")          # {"train": str, "val": str}
    tok = make_tokenizer("bpe", splits["train"])         # byte-level, trained here; or "char"
    data = TokenData.from_text(splits, tok)              # ids tokenized once: (N_train,), (N_val,)
    x, y = data.batch("train", batch_size=64, block_size=256, generator=g)   # (B, T) each

A batch is `batch_size` windows starting at random offsets; `y` is `x` shifted by one token, so
position t of a window is trained to predict token t + 1 from tokens 0..t. The offsets come from
a `torch.Generator` owned by the training loop: its state goes into the checkpoint, which is
what makes a resumed run read exactly the batches the uninterrupted one would have.

The default dataset, tinyshakespeare, comes from the cache, then a mirror, then a download
(shared.datasets). Offline with none of those, training falls back to `pystdlib` (this Python's
own standard library) and says so, so the first command always works.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from shared import datasets, sources
from shared.errors import DatasetError, UsageError
from tokenizers_fromscratch import ByteLevelBPETokenizer, CharTokenizer, Tokenizer

DEFAULT_DATASET = "tinyshakespeare"
FALLBACK_DATASET = "pystdlib"
FALLBACK_REASONS: dict[str, str] = {}  # dataset -> why it could not be loaded (this process)


def load_text(name: str) -> tuple[dict[str, str], str]:
    """The {"train", "val"} text of dataset `name` and the name actually used.

    Only the default dataset falls back (to pystdlib); asking for another dataset by name and
    not getting it is an error worth seeing. `fallback_note(name, used)` says why, for the log.
    """
    try:
        splits = datasets.load(name)
    except DatasetError as error:
        if name != DEFAULT_DATASET:
            raise
        FALLBACK_REASONS[name] = str(error)
        splits, name = datasets.load(FALLBACK_DATASET), FALLBACK_DATASET
    if not isinstance(splits.get("train"), str) or not isinstance(splits.get("val"), str):
        raise UsageError(f"dataset {name!r} is not a text dataset with train and val splits")
    return splits, name


def fallback_note(asked: str, used: str) -> str | None:
    """The note for a run that trains on `used` though `asked` was asked for, else None."""
    if asked == used:
        return None
    reason = FALLBACK_REASONS.get(asked, "it could not be loaded")
    return f"note: {asked} is unavailable, so this run trains on {used} instead ({reason})"


def load_training_text(
    dataset: str, text_file: Path | None = None, text_field: str = "text"
) -> tuple[dict[str, str], str, str | None]:
    """({"train", "val"} text, the name of what is used, a fallback note or None).

    A source (`text:PATH`, `jsonl:PATH`, `hf:ID`, ... see shared.sources) gives its text, with
    its own validation split or else the last 10% held out; `text_file` is the older spelling
    of `text:PATH`. Otherwise the registry's `dataset` (the default one falls back to
    pystdlib offline, and the note says so).
    """
    if text_file is not None:
        dataset = f"text:{text_file}"
    if sources.is_source(dataset):
        return sources.text_corpus(dataset, text_field), dataset, None
    splits, used = load_text(dataset)
    return splits, used, fallback_note(dataset, used)


def make_tokenizer(kind: str, text: str, vocab_size: int = 512) -> Tokenizer:
    """A tokenizer trained on `text`: one id per character, or byte-level BPE.

    BPE on the first megabyte only: its merges are settled long before that, and training on
    more would cost seconds of the learner's minute and a half.
    """
    if kind == "char":
        return CharTokenizer.train([text])
    if kind == "bpe":
        return ByteLevelBPETokenizer.train([text[:1_000_000]], vocab_size=vocab_size)
    raise UsageError(f"unknown tokenizer {kind!r}; use char or bpe")


def tokenizer_reference(tok: Tokenizer) -> dict:
    """What a checkpoint records about its tokenizer: kind, vocabulary size and a hash of its
    vocabulary, so a checkpoint is never paired with a tokenizer it was not trained with."""
    digest = hashlib.sha256("\x00".join(tok.id_to_str).encode("utf-8")).hexdigest()[:16]
    return {"kind": tok.kind, "vocab_size": tok.vocab_size, "sha256": digest}


@dataclass
class TokenData:
    """Both splits as 1-D int64 tensors of token ids."""

    train: Tensor  # (N_train,)
    val: Tensor  # (N_val,)

    @classmethod
    def from_text(cls, splits: dict[str, str], tok: Tokenizer) -> "TokenData":
        ids = {k: torch.tensor(tok.encode(splits[k]), dtype=torch.long) for k in ("train", "val")}
        return cls(ids["train"], ids["val"])

    def split(self, name: str) -> Tensor:
        if name not in ("train", "val"):
            raise UsageError(f"split must be train or val, got {name!r}")
        return self.train if name == "train" else self.val

    def batch(
        self, split: str, batch_size: int, block_size: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """`batch_size` random windows: inputs x and next-token targets y, both (B, T)."""
        return random_windows(self.split(split), batch_size, block_size, generator)


def random_windows(
    ids: Tensor, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """x = ids[i : i + T], y = ids[i + 1 : i + T + 1] for B random offsets i: (B, T) each."""
    if len(ids) < block_size + 1:
        raise UsageError(
            f"the text has {len(ids)} tokens, too few for windows of {block_size} + 1; "
            f"lower --model.block-size"
        )
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)  # (B,)
    windows = ids.unfold(0, block_size + 1, 1)[starts]  # (B, T + 1): views, gathered once
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def sequential_windows(ids: Tensor, block_size: int, batch_size: int, max_windows: int = 0):
    """Non-overlapping windows covering `ids` once, in batches of up to `batch_size`: what an
    exact evaluation reads. Yields x, y (b, T); the last partial window is dropped.

    With `max_windows` (0: no cap) only that many windows are read, spread evenly over `ids`:
    a capped evaluation then samples the whole text rather than its first pages.
    """
    n = (len(ids) - 1) // block_size
    x = ids[: n * block_size].view(n, block_size)  # (n, T)
    y = ids[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    if 0 < max_windows < n:
        keep = torch.linspace(0, n - 1, max_windows).round().long()  # (max_windows,)
        x, y, n = x[keep], y[keep], max_windows
    for i in range(0, n, batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def characters_in_windows(
    ids: Tensor, block_size: int, tok: Tokenizer, max_windows: int = 0
) -> int:
    """How many characters the targets of `sequential_windows(ids, block_size, ...,
    max_windows)` spell: what turns a loss per token into a loss per character.

    Nats per character are the one measure that compares models with different tokenizers
    (a BPE token of 2,048 holds 2.6 characters of Shakespeare, a char token one). Each window's
    targets are decoded on their own, so a character cut by a window's edge in non-ASCII text
    counts once on each side (as U+FFFD); in ASCII text the count is exact.
    """
    return sum(
        len(tok.decode(row.tolist()))
        for _, y in sequential_windows(ids, block_size, 256, max_windows)
        for row in y
    )
