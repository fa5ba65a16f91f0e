"""WordPiece, the BERT tokenizer: basic tokenization, then greedy longest-match-first.

1. **Normalize** (BERT's "basic tokenizer", as the `tokenizers` library's BertNormalizer does it,
   in this order): drop NUL, U+FFFD and control characters, turn every whitespace into a space;
   put spaces around CJK ideographs, so each becomes its own word; optionally strip accents
   (decompose to NFD, drop the combining marks) and lower-case, character by character.
2. **Pre-tokenize**: split on whitespace, and cut every punctuation character out as its own word
   ("don't" -> "don", "'", "t"). Punctuation is every ASCII symbol plus Unicode's P* categories.
3. **WordPiece**: take the longest vocabulary entry that starts the word, then the longest
   "##"-prefixed entry that continues it, and so on ("unaffable" -> "una", "##ffa", "##ble").
   If some rest of the word matches nothing, or the word is longer than 100 characters, the
   whole word becomes `[UNK]`.

    tok = WordPieceTokenizer.from_vocab_file("vocab.txt", lowercase=True)   # BERT uncased
    tok.encode("Hello, world!", add_special_tokens=True)  # [101, 7592, 1010, 2088, 999, 102]

The trainer (`WordPieceTokenizer.train`) learns the vocabulary the way the `tokenizers` library's
WordPieceTrainer does: byte-pair merges by frequency over the words, continuation pieces
carrying "##". Google's original WordPiece picks the pair that most raises the corpus
likelihood, count(ab) / (count(a) count(b)); that variant is an exercise in the README. What this
leaves out: `never_split` lists and offsets.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from shared.atomic import write_text_atomic
from tokenizers_fromscratch.base import Tokenizer, TokenizerError
from tokenizers_fromscratch.bpe_train import train_merges

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Rust's char::is_whitespace (Unicode White_Space); Python's str.isspace also counts U+001C..1F
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


_CLEANUP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
    (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


def _is_cjk(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(c: str) -> bool:
    return (c.isascii() and not c.isalnum() and c.isprintable() and c != " ") or (
        unicodedata.category(c).startswith("P")
    )


def clean_and_split(
    text: str, lowercase: bool = True, strip_accents: bool | None = None
) -> list[str]:
    """BERT's normalizer and pre-tokenizer: text -> words (whitespace gone, punctuation alone).

    `strip_accents=None` follows `lowercase`, as in BERT's uncased models.
    """
    if strip_accents is None:
        strip_accents = lowercase
    chars: list[str] = []
    for c in text:
        if c == "\0" or c == "\ufffd":
            continue
        if c in "\t\n\r":
            chars.append(" ")
            continue
        if unicodedata.category(c)[0] == "C":  # control, format, unassigned, private use
            continue
        if c in _WHITESPACE:
            chars.append(" ")
        elif _is_cjk(c):
            chars.extend((" ", c, " "))
        else:
            chars.append(c)
    cleaned = "".join(chars)
    if strip_accents:
        cleaned = "".join(
            c for c in unicodedata.normalize("NFD", cleaned) if unicodedata.category(c) != "Mn"
        )
    if lowercase:  # per character, like Rust's char::to_lowercase (no final-sigma rule)
        cleaned = "".join(c.lower() for c in cleaned) if not cleaned.isascii() else cleaned.lower()

    words: list[str] = []
    current: list[str] = []
    for c in cleaned:
        if c in _WHITESPACE:
            if current:
                words.append("".join(current))
                current = []
        elif _is_punctuation(c):
            if current:
                words.append("".join(current))
                current = []
            words.append(c)
        else:
            current.append(c)
    if current:
        words.append("".join(current))
    return words


class WordPieceTokenizer(Tokenizer):
    kind = "wordpiece"

    def __init__(
        self,
        vocab: Sequence[str],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        unk_token: str = "[UNK]",
        special_tokens: Iterable[str] | None = None,
        prefix_tokens: Sequence[str] | None = None,
        suffix_tokens: Sequence[str] | None = None,
        max_input_chars_per_word: int = 100,
        continuing_prefix: str = "##",
    ):
        """`vocab[i]` is the token with id i. Defaults follow BERT: the special tokens are
        those of [PAD] [UNK] [CLS] [SEP] [MASK] present, and `encode(..., True)` adds [CLS] ...
        [SEP] when both exist."""
        vocab = list(vocab)
        present = set(vocab)
        if unk_token not in present:
            raise TokenizerError(f"the WordPiece vocabulary has no unknown token {unk_token!r}")
        if special_tokens is None:
            special_tokens = [t for t in BERT_SPECIAL_TOKENS if t in present]
        if prefix_tokens is None and suffix_tokens is None:
            has_cls_sep = "[CLS]" in present and "[SEP]" in present
            prefix_tokens, suffix_tokens = (["[CLS]"], ["[SEP]"]) if has_cls_sep else ([], [])
        self._init_vocab(vocab, special_tokens, prefix_tokens or (), suffix_tokens or ())
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.unk_token = unk_token
        self._unk_id = self.str_to_id[unk_token]
        self.max_input_chars_per_word = max_input_chars_per_word
        self.continuing_prefix = continuing_prefix
        self._max_len = max(len(t) for t in vocab)
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------------------------------
    # Encoding and decoding

    def _word_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first; the whole word is [UNK] if any part cannot be matched."""
        if len(word) > self.max_input_chars_per_word:
            return [self._unk_id]
        vocab, prefix = self.str_to_id, self.continuing_prefix
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = min(len(word), start + self._max_len)
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    ids.append(found)
                    break
                end -= 1
            if end == start:
                return [self._unk_id]
            start = end
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        out: list[int] = []
        cache = self._cache
        for word in clean_and_split(text, self.lowercase, self.strip_accents):
            ids = cache.get(word)
            if ids is None:
                ids = self._word_ids(word)
                if len(cache) < 200_000:
                    cache[word] = ids
            out += ids
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """The `tokenizers` library's WordPiece decoder: a space before each token except the
        first, none before "##" pieces (prefix dropped), then BERT's clean-up of a space before
        punctuation, applied token by token."""
        self._check_ids(ids)
        prefix = self.continuing_prefix
        parts: list[str] = []
        for n, i in enumerate(ids):
            token = self.id_to_str[i]
            if n > 0:
                token = token[len(prefix) :] if token.startswith(prefix) else " " + token
            for before, after in _CLEANUP:
                token = token.replace(before, after)
            parts.append(token)
        return "".join(parts)

    def token_text(self, id: int) -> str:
        return self.id_to_token(id)

    # ------------------------------------------------------------------------------------------
    # Training

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
        min_frequency: int = 2,
        progress: Callable[[int], None] | None = None,
    ) -> WordPieceTokenizer:
        """Special tokens, then every character seen (as itself and as "##c"), then merges
        until `vocab_size`. A merge of "a" and "##b" makes "ab"; of "##a" and "##b", "##ab"."""
        words: Counter[str] = Counter()
        for text in texts:
            words.update(clean_and_split(text, lowercase, strip_accents))
        alphabet: set[str] = set()
        for word in words:
            alphabet.add(word[0])
            alphabet.update("##" + c for c in word[1:])
        tokens = [*special_tokens, *sorted(alphabet - set(special_tokens))]
        index = {t: i for i, t in enumerate(tokens)}
        word_counts = {
            (index[word[0]], *(index["##" + c] for c in word[1:])): count
            for word, count in words.items()
        }

        def join(left: str, right: str) -> str:
            return left + right[2:] if right.startswith("##") else left + right

        _, tokens = train_merges(
            word_counts, tokens, vocab_size, min_frequency, join=join, progress=progress
        )
        unk = "[UNK]" if "[UNK]" in special_tokens else special_tokens[0]
        return cls(tokens, lowercase=lowercase, strip_accents=strip_accents, unk_token=unk,
                   special_tokens=special_tokens)  # fmt: skip

    # ------------------------------------------------------------------------------------------
    # Files

    @classmethod
    def from_vocab_file(
        cls, path: str | Path, lowercase: bool = True, strip_accents: bool | None = None
    ) -> WordPieceTokenizer:
        """Read BERT's vocab.txt: one token per line, the line number (from 0) is its id."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise TokenizerError(f"cannot read WordPiece vocabulary {path}: {error}") from None
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        return cls(
            [t.rstrip("\r") for t in vocab], lowercase=lowercase, strip_accents=strip_accents
        )

    def save_vocab_file(self, path: str | Path) -> Path:
        return write_text_atomic(path, "".join(t + "\n" for t in self.id_to_str))

    def _to_json(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "unk_token": self.unk_token,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "continuing_prefix": self.continuing_prefix,
            "vocab": self.id_to_str,
        }

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> WordPieceTokenizer:
        return cls(
            data["vocab"],
            lowercase=data["lowercase"],
            strip_accents=data["strip_accents"],
            unk_token=data["unk_token"],
            special_tokens=data["special_tokens"],
            prefix_tokens=data["prefix_tokens"],
            suffix_tokens=data["suffix_tokens"],
            max_input_chars_per_word=data["max_input_chars_per_word"],
            continuing_prefix=data["continuing_prefix"],
        )
