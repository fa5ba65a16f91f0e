"""Reading a `sentencepiece` .model file without protobuf, and its text normalizer.

A .model file is one protobuf message, `ModelProto` (sentencepiece_model.proto). Protobuf's wire
format is simple: a sequence of (field number, wire type, value) records, where the value is a
varint, 4 or 8 raw bytes, or a length-prefixed byte string that may itself be a message. That is
all `parse_model` needs; the fields read are:

    ModelProto       1: pieces (repeated SentencePiece)  2: trainer_spec  3: normalizer_spec
    SentencePiece    1: piece (string)  2: score (float)  3: type (1 normal, 2 unknown,
                     3 control, 4 user defined, 5 unused, 6 byte)
    TrainerSpec      3: model_type (1 unigram, 2 bpe, 3 word, 4 char)  35: byte_fallback
                     40-43: unk_id, bos_id, eos_id, pad_id
    NormalizerSpec   1: name  2: precompiled_charsmap  3: add_dummy_prefix
                     4: remove_extra_whitespaces  5: escape_whitespaces

`CharsMap` applies the normalization rules (for the default `nmt_nfkc`: NFKC plus some
whitespace and control-character fixes) exactly as sentencepiece does: the rules are compiled into
a double-array trie (the darts-clone format) followed by the replacement strings, and at each
position the longest matching rule wins. What this leaves out: denormalization, the
`treat_whitespace_as_suffix` option, and user-defined symbols inside the normalizer.
"""

from __future__ import annotations

import itertools
import struct
import sys
import unicodedata
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tokenizers_fromscratch.base import TokenizerError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPACE = "\u2581"  # "▁", sentencepiece's visible space


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _records(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) for each record of one message; values are ints or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise TokenizerError(f"not a sentencepiece model: unknown protobuf wire type {wire}")
        yield number, value


def _int32(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # negative ints use 10-byte varints


@dataclass
class SentencePieceModel:
    pieces: list[tuple[str, float, int]] = field(default_factory=list)  # (piece, score, type)
    model_type: int = 1
    byte_fallback: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    normalizer_name: str = "nmt_nfkc"
    charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def parse_model(data: bytes) -> SentencePieceModel:
    """The fields of a serialized ModelProto that a unigram tokenizer needs."""
    model = SentencePieceModel()
    try:
        for number, value in _records(data):
            if number == 1:
                piece, score, kind = "", 0.0, NORMAL
                for n, v in _records(value):
                    if n == 1:
                        piece = v.decode("utf-8")
                    elif n == 2:
                        score = struct.unpack("<f", v)[0]
                    elif n == 3:
                        kind = v
                model.pieces.append((piece, score, kind))
            elif number == 2:
                for n, v in _records(value):
                    if n == 3:
                        model.model_type = v
                    elif n == 35:
                        model.byte_fallback = bool(v)
                    elif n in (40, 41, 42, 43):
                        setattr(model, ("unk_id", "bos_id", "eos_id", "pad_id")[n - 40], _int32(v))
            elif number == 3:
                for n, v in _records(value):
                    if n == 1:
                        model.normalizer_name = v.decode("utf-8")
                    elif n == 2:
                        model.charsmap = bytes(v)
                    elif n in (3, 4, 5):
                        name = (
                            "add_dummy_prefix",
                            "remove_extra_whitespaces",
                            "escape_whitespaces",
                        )
                        setattr(model, name[n - 3], bool(v))
    except (IndexError, UnicodeDecodeError, struct.error) as error:
        raise TokenizerError(f"not a readable sentencepiece model ({error})") from None
    if not model.pieces:
        raise TokenizerError("not a sentencepiece model: it has no pieces")
    return model


class CharsMap:
    """sentencepiece's precompiled normalization rules: a darts-clone trie + replacement strings.

    Blob layout: uint32 trie size in bytes, the trie (uint32 units), then NUL-terminated
    replacement strings; a trie value is an offset into those strings. Without a blob (the
    `identity` rule, or a model we trained), `nfkc=True` falls back to Python's NFKC.
    """

    def __init__(self, blob: bytes = b"", nfkc: bool = False):
        self.blob = blob
        self.nfkc = nfkc
        self.units: array[int] | None = None
        if blob:
            (size,) = struct.unpack_from("<I", blob, 0)
            units = array("I")
            units.frombytes(blob[4 : 4 + size])
            if sys.byteorder == "big":
                units.byteswap()
            self.units = units
            self.strings = blob[4 + size :]
        self._memo: dict[int, str] = {}

    def _longest(self, data: bytes, pos: int) -> tuple[int, int]:
        """(length in bytes, value) of the longest rule matching data[pos:], length 0 if none."""
        units = self.units
        assert units is not None
        node = 0
        unit = units[0]
        node ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)
        best = (0, 0)
        for i in range(pos, len(data)):
            byte = data[i]
            node ^= byte
            unit = units[node]
            if unit & ((1 << 31) | 0xFF) != byte:  # label mismatch: no rule continues
                break
            node ^= (unit >> 10) << ((unit & (1 << 9)) >> 6)
            if (unit >> 8) & 1:  # a rule ends here; its value sits in the leaf unit
                best = (i + 1 - pos, units[node] & ((1 << 31) - 1))
        return best

    def _replacement(self, offset: int) -> str:
        if offset not in self._memo:
            end = self.strings.index(b"\0", offset)
            self._memo[offset] = self.strings[offset:end].decode("utf-8")
        return self._memo[offset]

    def segments(self, text: str) -> Iterator[str]:
        """The normalized text, one source unit (a character or a matched rule) at a time."""
        if self.units is None:
            if not self.nfkc:
                yield from text
                return
            for c in unicodedata.normalize("NFKC", text):  # and any whitespace -> " "
                yield " " if c.isspace() else c
            return
        data = text.encode("utf-8")
        pos, n = 0, len(data)
        while pos < n:
            length, value = self._longest(data, pos)
            if length:
                yield self._replacement(value)
                pos += length
            else:  # no rule: copy one UTF-8 character
                first = data[pos]
                size = 1 if first < 0x80 else 2 if first < 0xE0 else 3 if first < 0xF0 else 4
                yield data[pos : pos + size].decode("utf-8")
                pos += size


def normalize(
    text: str,
    charsmap: CharsMap,
    add_dummy_prefix: bool = True,
    remove_extra_whitespaces: bool = True,
    escape_whitespaces: bool = True,
) -> str:
    """sentencepiece's Normalizer::Normalize: rules, then spaces; " " becomes "▁".

    With `remove_extra_whitespaces`, leading and trailing spaces go and runs of spaces become
    one; `add_dummy_prefix` puts a space before the first word, so "world" is "▁world" whether
    or not it starts the sentence.
    """
    space = SPACE if escape_whitespaces else " "
    segments = charsmap.segments(text)
    out: list[str] = []
    first = None
    if remove_extra_whitespaces:
        for seg in segments:
            if seg != " ":
                first = seg
                break
        if first is None:
            return ""
    if add_dummy_prefix:
        out.append(space)
    is_prev_space = remove_extra_whitespaces
    for seg in itertools.chain([first] if first is not None else [], segments):
        if is_prev_space:
            seg = seg.lstrip(" ")
        if seg:
            out.append(seg.replace(" ", space) if escape_whitespaces else seg)
            is_prev_space = seg.endswith(" ")
    result = "".join(out)
    if remove_extra_whitespaces:
        result = result.rstrip(space)
    return result
