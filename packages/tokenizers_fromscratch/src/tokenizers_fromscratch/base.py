"""The one interface every tokenizer here shares, and its readable JSON file.

A tokenizer turns text into a list of integer ids and back. Whatever the algorithm inside, the
outside is the same, so a model never cares which one it got:

    ids = tok.encode("Hello world")                  # no special tokens unless asked
    ids = tok.encode("Hello", add_special_tokens=True)  # e.g. [CLS] ... [SEP] for WordPiece
    text = tok.decode(ids)
    tok.token_to_id("[SEP]"), tok.id_to_token(102), tok.vocab_size
    tok.save("out/")                                 # out/tokenizer.json, human-readable
    tok = load_tokenizer("out/")                     # the JSON says which class to build

Special tokens (`<|endoftext|>`, `[CLS]`, ...) are cut out of the raw text *before* the algorithm
sees it, so they are never split into pieces; this is what the `tokenizers` library does with its
"added tokens". Subclasses implement `_encode_ordinary` (text without special tokens), `decode`,
and the JSON fields of `_to_json` / `_from_json`. What this leaves out: offsets (which characters
each token came from), padding and truncation, and pair inputs (`[CLS] a [SEP] b [SEP]`); the
later stages build those from `encode` and the special token ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import regex

from shared.atomic import write_text_atomic
from shared.errors import UsageError

FILENAME = "tokenizer.json"
FORMAT_VERSION = 1

# kind -> class, filled by Tokenizer.__init_subclass__ as each subclass is defined
_REGISTRY: dict[str, type[Tokenizer]] = {}


class TokenizerError(UsageError):
    """An expected tokenizer failure: unknown token or id, unreadable or mismatched files."""


class Tokenizer:
    """Base class: vocabulary bookkeeping, special tokens, batch encoding, save and load.

    A subclass fills `self.id_to_str` (id -> token string, ids are 0..n-1) and calls
    `_init_vocab`; `special_tokens` names the tokens matched whole in the raw text.
    """

    kind: ClassVar[str] = ""
    # Whether special tokens written in the input text are recognised (BPE, WordPiece: yes, like
    # the `tokenizers` library; SentencePiece models: no, like the `sentencepiece` library).
    match_special_in_text: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Record a subclass that names its own `kind`, so `load_tokenizer` can build it.

        A subclass that inherits its parent's kind (say, a tweaked BPE) is not recorded: its
        files load as the parent, as they say.
        """
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("kind"):
            return
        known = _REGISTRY.get(cls.kind)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(
                f"tokenizer kind {cls.kind!r} is taken by {known.__module__}.{known.__qualname__};"
                f" {cls.__module__}.{cls.__qualname__} needs another kind"
            )
        _REGISTRY[cls.kind] = cls

    def _init_vocab(
        self,
        id_to_str: list[str],
        special_tokens: Iterable[str] = (),
        prefix_tokens: Sequence[str] = (),
        suffix_tokens: Sequence[str] = (),
    ) -> None:
        self.id_to_str = id_to_str
        self.str_to_id = {t: i for i, t in enumerate(id_to_str)}
        if len(self.str_to_id) != len(id_to_str):
            dupes = sorted({t for t in id_to_str if id_to_str.count(t) > 1})[:3]
            raise TokenizerError(f"the vocabulary lists these tokens twice: {dupes}")
        self.special_tokens = {t: self.token_to_id(t) for t in special_tokens}
        self.prefix_tokens = list(prefix_tokens)  # added by encode(..., add_special_tokens=True)
        self.suffix_tokens = list(suffix_tokens)
        for t in [*self.prefix_tokens, *self.suffix_tokens]:
            self.token_to_id(t)  # fail now, not at the first encode
        # longest first, so "<|endoftext|>" wins over a shorter special token that prefixes it
        names = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = (
            regex.compile("|".join(regex.escape(t) for t in names))
            if names and self.match_special_in_text
            else None
        )

    # ------------------------------------------------------------------------------------------
    # The interface

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_str)

    def token_to_id(self, token: str) -> int:
        try:
            return self.str_to_id[token]
        except KeyError:
            raise TokenizerError(
                f"token {token!r} is not in this {self.kind} tokenizer's vocabulary "
                f"of {self.vocab_size} tokens"
            ) from None

    def id_to_token(self, id: int) -> str:
        if not 0 <= id < len(self.id_to_str):
            raise self._bad_id(id)
        return self.id_to_str[id]

    def _bad_id(self, id: object) -> TokenizerError:
        return TokenizerError(
            f"token id {id!r} is out of range: this {self.kind} tokenizer has "
            f"{self.vocab_size} ids (0..{self.vocab_size - 1})"
        )

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Ids for `text`; special tokens written in the text stay whole."""
        ids: list[int] = []
        if add_special_tokens:
            ids.extend(self.str_to_id[t] for t in self.prefix_tokens)
        if self._special_re is None:
            ids.extend(self._encode_ordinary(text))
        else:
            start = 0
            for match in self._special_re.finditer(text):
                if match.start() > start:
                    ids.extend(self._encode_ordinary(text[start : match.start()]))
                ids.append(self.special_tokens[match.group()])
                start = match.end()
            if start < len(text):
                ids.extend(self._encode_ordinary(text[start:]))
        if add_special_tokens:
            ids.extend(self.str_to_id[t] for t in self.suffix_tokens)
        return ids

    def encode_batch(
        self, texts: Iterable[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        return [self.encode(t, add_special_tokens) for t in texts]

    def decode_batch(self, batch: Iterable[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def tokens(self, text: str) -> list[str]:
        """The token strings `encode` would produce (handy for looking at a segmentation)."""
        return [self.id_to_str[i] for i in self.encode(text)]

    def token_text(self, id: int) -> str:
        """What one token looks like as text, for printing segmentations (`encode` command)."""
        return self.decode([id])

    def _check_ids(self, ids: Sequence[int]) -> None:
        n = len(self.id_to_str)
        for i in ids:
            if not (isinstance(i, int) and 0 <= i < n):
                raise self._bad_id(i)

    # ------------------------------------------------------------------------------------------
    # Subclasses

    def _encode_ordinary(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def _to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    # Files

    def save(self, directory: str | Path) -> Path:
        """Write `<directory>/tokenizer.json` (atomically) and return its path."""
        data = {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "special_tokens": list(self.special_tokens),
            "prefix_tokens": self.prefix_tokens,
            "suffix_tokens": self.suffix_tokens,
            **self._to_json(),
        }
        path = Path(directory) / FILENAME
        return write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Read a tokenizer saved by `save`; `Tokenizer.load` accepts any kind."""
        data = read_tokenizer_json(directory)
        if cls.kind and data["kind"] != cls.kind:
            raise TokenizerError(
                f"{Path(directory) / FILENAME} holds a {data['kind']!r} tokenizer, not "
                f"{cls.kind!r}; use tokenizers_fromscratch.load_tokenizer to load any kind"
            )
        target = cls if cls.kind else kind_registry()[data["kind"]]
        return target._from_json(data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def read_tokenizer_json(directory: str | Path) -> dict[str, Any]:
    path = Path(directory)
    if path.is_dir():
        path = path / FILENAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerError(
            f"no {FILENAME} at {path}; save a tokenizer there first (tok.save(dir) or the "
            f"`train` command)"
        ) from None
    except json.JSONDecodeError as error:
        raise TokenizerError(f"{path} is not valid JSON ({error}); was it cut short?") from None
    kinds = ", ".join(sorted(_REGISTRY))
    if not isinstance(data, dict) or data.get("kind") not in _REGISTRY:
        raise TokenizerError(
            f"{path} does not say which tokenizer it holds: expected 'kind' to be one of "
            f"{kinds}, got {data.get('kind') if isinstance(data, dict) else data!r}"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise TokenizerError(
            f"{path} has format_version {data.get('format_version')!r}; this code reads "
            f"version {FORMAT_VERSION}"
        )
    return data


def kind_registry() -> dict[str, type[Tokenizer]]:
    """kind -> class, for every tokenizer that can be saved and loaded.

    Each subclass with a `kind` records itself here when its class statement runs
    (`Tokenizer.__init_subclass__`), so this module never imports its subclasses; importing the
    package (`tokenizers_fromscratch/__init__.py`) defines them all.
    """
    return dict(_REGISTRY)


def load_tokenizer_data(data: dict[str, Any]) -> Tokenizer:
    """A tokenizer from the dictionary `save` writes (one kept inside another's file: the base
    of an `AddedTokensTokenizer`)."""
    if data.get("kind") not in _REGISTRY:
        raise TokenizerError(f"unknown tokenizer kind {data.get('kind')!r}")
    return _REGISTRY[data["kind"]]._from_json(data)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load any tokenizer saved with `save(directory)`; its JSON names its kind."""
    return Tokenizer.load(directory)
