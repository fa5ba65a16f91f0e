"""Tokens added to a trained tokenizer: new ids after the old ones, the old ones unchanged.

    tok = CharTokenizer.train([shakespeare])                      # 65 characters, no digits
    chat = AddedTokensTokenizer(tok, special_tokens=["<|user|>", "<|end|>"], chars="0123456789")
    chat.encode("<|user|>1 + 2<|end|>")        # [65, 66?...]: specials whole, new digits, old ids

Fine-tuning a model to a new format (a chat template) or a new alphabet (digits for a model that
read only Shakespeare) needs ids the base tokenizer does not have. Appending them keeps every
old id where it was, so the trained embedding rows still mean what they meant, and the model
only grows new rows (`transformers`' `add_tokens` / `resize_token_embeddings` do the same).

Special tokens are matched whole in the text. Added characters are single characters the base
tokenizer cannot encode: for a char tokenizer each gets an id of its own; any other base
tokenizer already encodes every character (byte-level BPE) or maps it to its unknown token,
so added characters are only for char tokenizers.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers_fromscratch.base import Tokenizer, TokenizerError, load_tokenizer_data


class AddedTokensTokenizer(Tokenizer):
    kind = "added"

    def __init__(
        self, base: Tokenizer, special_tokens: Iterable[str] = (), chars: Iterable[str] = ()
    ) -> None:
        self.base = base
        new_specials = [t for t in dict.fromkeys(special_tokens) if t not in base.str_to_id]
        new_chars = [c for c in dict.fromkeys(chars) if c not in base.str_to_id]
        for c in new_chars:
            if len(c) != 1:
                raise TokenizerError(f"added characters must be single characters, got {c!r}")
        if new_chars and base.kind != "char":
            raise TokenizerError(
                f"a {base.kind} tokenizer encodes characters its own way; add characters to a "
                "char tokenizer only (special tokens may be added to any)"
            )
        self.added_special = new_specials
        self.added_chars = new_chars
        specials = [*base.special_tokens, *new_specials]
        self._init_vocab(
            [*base.id_to_str, *new_specials, *new_chars],
            special_tokens=specials,
            prefix_tokens=base.prefix_tokens,
            suffix_tokens=base.suffix_tokens,
        )
        n = base.vocab_size + len(new_specials)
        self._new_char_ids = {c: n + i for i, c in enumerate(new_chars)}

    @property
    def num_added(self) -> int:
        return len(self.added_special) + len(self.added_chars)

    def _encode_ordinary(self, text: str) -> list[int]:
        if not self._new_char_ids:
            return self.base._encode_ordinary(text)
        ids: list[int] = []
        run_start = 0  # the base tokenizer encodes each run of its own characters
        for i, c in enumerate(text):
            if c in self._new_char_ids:
                if run_start < i:
                    ids.extend(self.base._encode_ordinary(text[run_start:i]))
                ids.append(self._new_char_ids[c])
                run_start = i + 1
        if run_start < len(text):
            ids.extend(self.base._encode_ordinary(text[run_start:]))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        n = self.base.vocab_size
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i < n:
                run.append(i)
                continue
            if run:
                out.append(self.base.decode(run))
                run = []
            out.append(self.id_to_str[i])
        if run:
            out.append(self.base.decode(run))
        return "".join(out)

    def _to_json(self) -> dict[str, Any]:
        base = {
            "kind": self.base.kind,
            "special_tokens": list(self.base.special_tokens),
            "prefix_tokens": self.base.prefix_tokens,
            "suffix_tokens": self.base.suffix_tokens,
            **self.base._to_json(),
        }
        return {"base": base, "added_special": self.added_special, "added_chars": self.added_chars}

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> "AddedTokensTokenizer":
        base = load_tokenizer_data(data["base"])
        return cls(base, data["added_special"], data["added_chars"])
