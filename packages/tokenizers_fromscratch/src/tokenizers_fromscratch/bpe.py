"""Byte-level BPE, the GPT-2 tokenizer: encode, decode, train, and read the HF file format.

Three steps turn text into ids:

1. **Pre-tokenize** with GPT-2's regular expression: words with their leading space
   (" Citizen"), runs of digits, runs of punctuation, whitespace. BPE never merges across these
   pieces, so " dog" gets the same tokens wherever it appears.
2. **Bytes, shown as characters.** Each piece becomes its UTF-8 bytes, so any string at all,
   emoji and typos included, can be encoded with no unknown token. GPT-2's files write each byte
   as a printable character (`bytes_to_unicode`: space is "Ġ", newline "Ċ") so that tokens are
   readable strings in vocab.json.
3. **Merges applied by rank.** Repeatedly fuse the adjacent pair that was learned earliest, until
   no learned pair is left. The result for each distinct piece is cached: text repeats words
   endlessly, so most pieces cost one dictionary lookup.

    tok = ByteLevelBPETokenizer.from_files("vocab.json", "merges.txt")   # GPT-2 / HF format
    tok = ByteLevelBPETokenizer.train(lines, vocab_size=4096, special_tokens=["<|endoftext|>"])

Special tokens (`<|endoftext|>`) are cut out before step 1 and never split. `decode` turns ids back
into bytes and then text, writing U+FFFD for byte sequences that are not valid UTF-8 (an id list
cut in the middle of a character), as the `tokenizers` library does. What this leaves out: BPE
dropout, `ignore_merges` (Llama 3) and offsets.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import regex

from shared.atomic import write_text_atomic
from tokenizers_fromscratch.base import Tokenizer, TokenizerError
from tokenizers_fromscratch.bpe_train import merge_word, train_merges

# GPT-2's pre-tokenizer (also the `tokenizers` library's ByteLevel pre-tokenizer)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_CACHE_LIMIT = 200_000  # distinct pre-tokens remembered; the cache is emptied when full


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to 256 printable characters.

    The 188 bytes that are already visible Latin-1 characters ("!".."~", "¡".."¬", "®".."ÿ")
    stand for themselves; the other 68 (space, control bytes, ...) are shifted to code points
    256 and up, in byte order: byte 0 -> "Ā", ..., space (32) -> "Ġ", newline (10) -> "Ċ".
    """
    visible = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in visible}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


class ByteLevelBPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        special_tokens: Iterable[str] | None = None,
        pattern: str = GPT2_PATTERN,
        add_prefix_space: bool = False,
        prefix_tokens: Sequence[str] = (),
        suffix_tokens: Sequence[str] = (),
    ):
        """`vocab` maps token strings (in the byte-as-character alphabet) to ids 0..n-1.

        `special_tokens=None` takes every vocabulary entry that is neither a single byte nor
        made by a merge: in a trained file those are exactly the added tokens (`<|endoftext|>`).
        """
        n = len(vocab)
        id_to_str: list[str] = [""] * n
        for token, i in vocab.items():
            if not (isinstance(i, int) and 0 <= i < n) or id_to_str[i]:
                raise TokenizerError(
                    f"vocabulary ids must be 0..{n - 1}, each used once; {token!r} has id {i!r}"
                )
            id_to_str[i] = token
        byte_chars = bytes_to_unicode()
        missing = [c for c in byte_chars.values() if c not in vocab]
        if missing:
            raise TokenizerError(
                f"a byte-level vocabulary needs all 256 byte characters; {len(missing)} are "
                f"missing, e.g. {missing[:5]}"
            )
        self._byte_ids = [vocab[byte_chars[b]] for b in range(256)]

        self.merges = [(a, b) for a, b in merges]
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}  # pair -> (rank, fused id)
        for rank, (a, b) in enumerate(self.merges):
            ids = (vocab.get(a), vocab.get(b), vocab.get(a + b))
            if None in ids:
                raise TokenizerError(
                    f"merge {rank} ({a!r} + {b!r}) uses or makes a token that is not in the "
                    f"vocabulary; are the vocab and merges files from the same tokenizer?"
                )
            self._ranks.setdefault((ids[0], ids[1]), (rank, ids[2]))

        if special_tokens is None:
            made = {a + b for a, b in self.merges} | set(byte_chars.values())
            special_tokens = [t for t in id_to_str if t not in made]
        self._init_vocab(id_to_str, special_tokens, prefix_tokens, suffix_tokens)

        self.pattern = pattern
        self.add_prefix_space = add_prefix_space
        self._pat = regex.compile(pattern)
        self._cache: dict[str, list[int]] = {}
        byte_of = {c: b for b, c in byte_chars.items()}
        self._token_bytes = [
            t.encode("utf-8")
            if t in self.special_tokens or any(c not in byte_of for c in t)
            else bytes(byte_of[c] for c in t)
            for t in id_to_str
        ]

    # ------------------------------------------------------------------------------------------
    # Encoding and decoding

    def _merge(self, ids: list[int]) -> list[int]:
        """Apply merges to one pre-token's byte ids, lowest rank first, until none applies."""
        ranks = self._ranks
        while len(ids) > 1:
            best, best_rank = None, len(ranks)
            for pair in pairwise(ids):
                found = ranks.get(pair)
                if found is not None and found[0] < best_rank:
                    best, best_rank = pair, found[0]
            if best is None:
                break
            ids = merge_word(ids, best[0], best[1], ranks[best][1])
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        out: list[int] = []
        cache, byte_ids = self._cache, self._byte_ids
        for piece in self._pat.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self._merge([byte_ids[b] for b in piece.encode("utf-8")])
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[piece] = ids
            out += ids
        return out

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        return b"".join(self._token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------------------------------
    # Training

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = (),
        min_frequency: int = 2,
        pattern: str = GPT2_PATTERN,
        progress: Callable[[int], None] | None = None,
    ) -> ByteLevelBPETokenizer:
        """Learn `vocab_size - 256 - len(special_tokens)` merges (fewer if pairs run out).

        Ids follow the `tokenizers` library's trainer: special tokens first, then the 256 byte
        characters sorted by code point, then one id per merge. See `bpe_train` for the
        algorithm and its tie-break.
        """
        base = sorted(bytes_to_unicode().values())
        tokens = [*special_tokens, *(c for c in base if c not in special_tokens)]
        if vocab_size < len(tokens):
            raise TokenizerError(
                f"vocab_size {vocab_size} is smaller than the {len(tokens)} tokens a byte-level "
                f"BPE starts with (256 bytes + {len(special_tokens)} special tokens)"
            )
        pat = regex.compile(pattern)
        split_special = (
            regex.compile("|".join(regex.escape(t) for t in special_tokens))
            if special_tokens
            else None
        )
        counts: Counter[str] = Counter()
        for text in texts:
            for chunk in split_special.split(text) if split_special else (text,):
                counts.update(pat.findall(chunk))
        index = {t: i for i, t in enumerate(tokens)}
        byte_ids = [index[c] for c in bytes_to_unicode().values()]
        word_counts = {tuple(byte_ids[b] for b in w.encode("utf-8")): c for w, c in counts.items()}
        merges, tokens = train_merges(
            word_counts, tokens, vocab_size, min_frequency, progress=progress
        )
        vocab = {t: i for i, t in enumerate(tokens)}
        return cls(
            vocab,
            [(tokens[a], tokens[b]) for a, b, _ in merges],
            special_tokens=special_tokens,
            pattern=pattern,
        )

    # ------------------------------------------------------------------------------------------
    # Files

    @classmethod
    def from_files(
        cls,
        vocab_json: str | Path,
        merges_txt: str | Path,
        special_tokens: Iterable[str] | None = None,
        add_prefix_space: bool = False,
    ) -> ByteLevelBPETokenizer:
        """Read GPT-2 / `tokenizers` files: vocab.json ({token: id}), merges.txt ("a b" lines)."""
        try:
            vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
            lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
        except (OSError, json.JSONDecodeError) as error:
            raise TokenizerError(
                f"cannot read BPE files {vocab_json}, {merges_txt}: {error}"
            ) from None
        merges = []
        for number, line in enumerate(lines, 1):
            if not line.strip() or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise TokenizerError(f"{merges_txt} line {number} is not 'left right': {line!r}")
            merges.append((parts[0], parts[1]))
        return cls(vocab, merges, special_tokens=special_tokens, add_prefix_space=add_prefix_space)

    def save_hf_files(self, directory: str | Path) -> tuple[Path, Path]:
        """Write vocab.json and merges.txt, the format `from_files` and `tokenizers` read."""
        directory = Path(directory)
        vocab = {t: i for i, t in enumerate(self.id_to_str)}
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        return (
            write_text_atomic(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False)),
            write_text_atomic(directory / "merges.txt", merges),
        )

    def _to_json(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "add_prefix_space": self.add_prefix_space,
            "vocab": {t: i for i, t in enumerate(self.id_to_str)},
            "merges": [[a, b] for a, b in self.merges],
        }

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ByteLevelBPETokenizer:
        return cls(
            data["vocab"],
            [(a, b) for a, b in data["merges"]],
            special_tokens=data["special_tokens"],
            pattern=data["pattern"],
            add_prefix_space=data["add_prefix_space"],
            prefix_tokens=data["prefix_tokens"],
            suffix_tokens=data["suffix_tokens"],
        )
