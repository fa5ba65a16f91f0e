"""The simplest tokenizer: one id per character.

This is what the character-level language models of the earlier stages used (tinyshakespeare has
65 distinct characters). It compresses nothing: one token per character, so a model must spend
its context on spelling. Every other tokenizer here exists to do better than this.

    tok = CharTokenizer.train([text])           # vocabulary: the sorted characters of `text`
    tok.encode("First") == [18, 47, 56, 57, 58] # on tinyshakespeare

Characters outside the vocabulary become `unk_token` when the tokenizer has one, else `encode`
raises a `TokenizerError` naming the character. What this leaves out: normalisation (é written
as one code point or two gives different ids).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers_fromscratch.base import Tokenizer, TokenizerError


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(
        self,
        chars: Sequence[str],
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
    ):
        """Special tokens take the first ids, then the characters in the order given."""
        for c in chars:
            if len(c) != 1:
                raise TokenizerError(f"CharTokenizer entries must be single characters, got {c!r}")
        specials = list(special_tokens)
        if unk_token is not None and unk_token not in specials:
            specials.append(unk_token)
        self._init_vocab([*specials, *chars], special_tokens=specials)
        self.unk_token = unk_token
        self._unk_id = self.str_to_id[unk_token] if unk_token is not None else None
        self._char_to_id = {c: self.str_to_id[c] for c in chars}

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int | None = None,
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
    ) -> CharTokenizer:
        """All characters seen (sorted), or the `vocab_size` most frequent when given.

        A vocabulary cut short needs an `unk_token` for the characters it leaves out.
        """
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        n_special = len(special_tokens) + (
            unk_token is not None and unk_token not in special_tokens
        )
        chars = sorted(counts)
        if vocab_size is not None:
            keep = vocab_size - n_special
            if keep < 1:
                raise TokenizerError(
                    f"vocab_size {vocab_size} leaves no room for characters after "
                    f"{n_special} special tokens"
                )
            if keep < len(chars):
                if unk_token is None:
                    raise TokenizerError(
                        f"vocab_size {vocab_size} keeps {keep} of {len(chars)} characters; "
                        f"pass unk_token='<unk>' so the rest have somewhere to go"
                    )
                top = sorted(counts, key=lambda c: (-counts[c], c))[:keep]
                chars = sorted(top)
        return cls(chars, special_tokens=special_tokens, unk_token=unk_token)

    def _encode_ordinary(self, text: str) -> list[int]:
        table = self._char_to_id
        try:
            return [table[c] for c in text]
        except KeyError:
            if self._unk_id is None:
                missing = next(c for c in text if c not in table)
                raise TokenizerError(
                    f"character {missing!r} (U+{ord(missing):04X}) is not in the vocabulary "
                    f"and this CharTokenizer has no unk_token"
                ) from None
            return [table.get(c, self._unk_id) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        return "".join(self.id_to_str[i] for i in ids)

    def _to_json(self) -> dict[str, Any]:
        n = len(self.special_tokens)
        return {"unk_token": self.unk_token, "chars": self.id_to_str[n:]}

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(
            data["chars"], special_tokens=data["special_tokens"], unk_token=data["unk_token"]
        )
