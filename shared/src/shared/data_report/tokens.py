"""The stage's tokens: how long the rows are in what the model reads, and how much is unknown.

Characters say little about what a model pays for: it reads tokens. Each stage tokenizes its
own way (bert: WordPiece with a fixed vocabulary; the transformer: words seen in training;
gpt: byte-level BPE; seq_models: characters), so the report stays tokenizer-agnostic and the
stage hands it a `Tokens`: a `tokenize(text) -> list[str]` and an `is_unknown(token)` test.

The unknown rate is the share of an evaluation split's tokens the model cannot read: words it
never saw in training become `<unk>` and carry no meaning, so a high rate caps the accuracy
before any training starts. Byte-level BPE can spell anything (its unknown rate is 0 by
construction, and the report says so); a vocabulary built from the training split has no
unknown training tokens by construction (with `min_freq` 1), only evaluation ones.

Tokenizing is the slowest step of the report (WordPiece in Python: about 4,000 rows a second on
a busy 2-core CPU), so only `--token_rows` rows of each split are tokenized, spread evenly over
the split; the histogram and the rate come from those.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Tokens(Protocol):
    """What a stage tells the report about its tokens."""

    name: str  # "WordPiece, MiniLM's vocabulary (30,522)"
    note: str  # why the unknown rate is what it is

    def tokenize(self, text: str) -> list[str]: ...

    def is_unknown(self, token: str) -> bool: ...


class Vocabulary:
    """Tokens split by a function, unknown when seen fewer than `min_freq` times in training."""

    def __init__(
        self,
        name: str,
        split: Callable[[str], list[str]],
        train_texts: Sequence[str],
        min_freq: int = 1,
        note: str = "",
    ) -> None:
        counts = Counter(token for text in train_texts for token in split(text))
        self.known = {token for token, count in counts.items() if count >= min_freq}
        self.split = split
        self.name = f"{name}, a vocabulary of train's {len(self.known):,} (min_freq {min_freq})"
        self.note = note or "unknown: a token the training split has fewer than min_freq times"

    def tokenize(self, text: str) -> list[str]:
        return self.split(text)

    def is_unknown(self, token: str) -> bool:
        return token not in self.known


def words(text: str) -> list[str]:
    return text.split()


def characters(text: str) -> list[str]:
    return list(text)


def word_tokens(field: str, train_texts: Sequence[str]) -> Tokens:
    """The default: words between spaces, the vocabulary of the training split."""
    return Vocabulary("words", words, train_texts)


# A stage's hook: (text field, the training split's texts of it) -> its Tokens for that field.
TokensFor = Callable[[str, Sequence[str]], Tokens]


@dataclass(frozen=True)
class StageData:
    """What a stage's `data-report` hook gives the shared command."""

    stage: str
    dataset: str  # the dataset the stage trains on by default
    tokens: TokensFor = word_tokens
    select_seed_offset: int = 0  # added to --seed where the stage's selection draw adds one


def spread(n_rows: int, limit: int) -> list[int]:
    """`limit` row indices spread evenly over `n_rows` (all of them when limit is 0 or more)."""
    if not limit or limit >= n_rows:
        return list(range(n_rows))
    return [i * n_rows // limit for i in range(limit)]


@dataclass
class TokenCounts:
    lengths: list[int]  # tokens a row, for the rows tokenized
    tokens: int
    unknown: int
    rows: int  # how many rows were tokenized

    @property
    def unknown_rate(self) -> float:
        return self.unknown / self.tokens if self.tokens else 0.0


def count_tokens(tokens: Tokens, texts: Sequence[str], limit: int) -> TokenCounts:
    """Token lengths and unknown tokens of `limit` rows of `texts` (all with limit 0)."""
    lengths, unknown = [], 0
    picked = spread(len(texts), limit)
    for i in picked:
        pieces = tokens.tokenize(texts[i])
        lengths.append(len(pieces))
        unknown += sum(1 for piece in pieces if tokens.is_unknown(piece))
    return TokenCounts(lengths, sum(lengths), unknown, len(picked))
