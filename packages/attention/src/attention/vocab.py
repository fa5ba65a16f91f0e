"""Words to ids and back: a regex tokenizer and a frequency-cut vocabulary.

The translator works on whole words. `tokenize` splits a caption into words and punctuation
with one regular expression, keeping case (German capitalises nouns, and the test references
are cased) and keeping hyphenated words and contractions together ("t-shirt", "man's"):

    tokenize("Ein Mann fährt Fahrrad.")  ->  ["Ein", "Mann", "fährt", "Fahrrad", "."]

`Vocab.build` keeps every word seen at least `min_freq` times in the training captions; rarer
words become `<unk>`. Multi30k's captions are short and repetitive, so min_freq=2 keeps about
8,000 German and 6,000 English words and loses about 1-2% of running words. Subword units
(BPE, stage 6) would remove the `<unk>` problem altogether; this stage keeps the vocabulary
simple so that the attention is the new idea.

`detokenize` undoes the spacing around punctuation for display; BLEU re-tokenizes anyway.
"""

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.atomic import write_text_atomic

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

_TOKEN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Words (with inner hyphens and apostrophes) and single punctuation marks."""
    return _TOKEN.findall(text.strip())


def detokenize(tokens: Iterable[str]) -> str:
    """Join words with spaces, attaching punctuation to the word before (or after, for '(')."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,!?;:%)\]])", r"\1", text)
    return re.sub(r"([(\[]) ", r"\1", text)


@dataclass
class Vocab:
    tokens: list[str]  # id -> word; the four specials first
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self.tokens[:4]}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_freq: int = 2) -> "Vocab":
        """Every token seen at least `min_freq` times, most frequent first (ties: alphabetical)."""
        counts = Counter(t for sentence in sentences for t in sentence)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
            key=lambda t: (-counts[t], t),
        )
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str], eos: bool = True) -> list[int]:
        """Ids of `tokens` (unknown words -> <unk>), followed by <eos> unless eos=False."""
        ids = [self.index.get(t, UNK) for t in tokens]
        return [*ids, EOS] if eos else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of `ids`, stopping at <eos> and skipping <pad> and <bos>."""
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.tokens[i])
        return words

    def save(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))
