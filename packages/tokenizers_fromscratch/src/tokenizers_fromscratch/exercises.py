"""The tokenizers' exercises: how BPE learns and applies its merges, how WordPiece and Unigram cut
a word, each checked against the stage's own code.

    uv run --package tokenizers_fromscratch exercise list

Inputs are small corpora, words and vocabularies: the stage's known answers (Wikipedia's
"aaabdaaabac", BERT's "unaffable"), the edge cases its tests use (ties, a merge that makes an
existing token, unknown characters, an empty word, a word too long to cut) and random ones
drawn with a seed. A method is written as a plain function whose first argument plays `self`:
the check hands it a real tokenizer of the stage, built from a vocabulary for the case.
"""

import random
from collections.abc import Callable
from typing import Any

from shared.exercises import Case, Exercise
from shared.learn import exercise_command
from tokenizers_fromscratch.bpe import ByteLevelBPETokenizer, bytes_to_unicode
from tokenizers_fromscratch.bpe_train import train_merges_naive
from tokenizers_fromscratch.sp_model import NORMAL, UNKNOWN
from tokenizers_fromscratch.unigram import UnigramTokenizer
from tokenizers_fromscratch.wordpiece import WordPieceTokenizer

BYTES = [chr(i) for i in range(256)]  # a vocabulary whose id i is the byte i, as in the tests

TRAIN_IMPORTS = """
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise

from tokenizers_fromscratch.bpe_train import Merge, Pair, _add_token, merge_word
"""

MERGE_IMPORTS = """
from itertools import pairwise

from tokenizers_fromscratch.bpe_train import merge_word
"""

VITERBI_IMPORTS = """
from array import array
"""


# ----------------------------------------------------------------------------------------------
# Outputs spelled as tokens: a wrong answer reads "expected 'un ##aff ##able', got '[UNK]'"
# rather than "expected 3 items, got 1". Tokens and ids correspond one to one, so comparing the
# spelling compares the ids.


def _spelled(spell: Callable[[tuple, Any], Any]) -> Callable[[Callable[..., Any], tuple], Any]:
    """A `call` hook: call the function on the case's args, then `spell(args, output)`; an
    output that cannot be spelled (not a list of valid ids, say) is compared as it is."""

    def call(function: Callable[..., Any], args: tuple) -> Any:
        output = function(*args)
        try:
            return spell(args, output)
        except (TypeError, ValueError, IndexError, KeyError):
            return output

    return call


def _token(tokens: list[str], i: Any) -> str:
    if not isinstance(i, int) or not 0 <= i < len(tokens):
        raise ValueError(f"not an id: {i!r}")
    return tokens[i]


def _spell_merges(args: tuple, output: Any) -> dict[str, Any]:
    merges, tokens = output
    spelled = [f"({a}, {b}) -> {new} {_token(tokens, new)!r}" for a, b, new in merges]
    return {"merges": spelled, "tokens": tokens}


def _spell_ids(args: tuple, ids: Any) -> str:
    return " ".join(_token(args[0].id_to_str, i) for i in ids)


def _spell_path(args: tuple, path: Any) -> str:
    return " ".join(f"{_token(args[0].id_to_str, i)}[{start}:{end}]" for i, start, end in path)


# ----------------------------------------------------------------------------------------------
# BPE: learning the merges


def _wordpiece_join(left: str, right: str) -> str:
    """How WordPiece's trainer spells a merged token: "a" + "##b" is "ab", "##a" + "##b" "##ab"."""
    return left + right[2:] if right.startswith("##") else left + right


def _random_words(rng: random.Random, letters: str, n: int, longest: int) -> dict:
    """{word as byte ids: count} for `n` random words of 1 to `longest` letters."""
    words: dict[tuple[int, ...], int] = {}
    for _ in range(n):
        word = tuple(ord(rng.choice(letters)) for _ in range(rng.randint(1, longest)))
        words[word] = words.get(word, 0) + rng.randint(1, 3)
    return words


def _train_cases() -> list[Case]:
    wordpiece_tokens = ["a", "b", "c", "##a", "##b", "##c"]
    a, b, c, _, hb, hc = range(6)
    return [
        Case(
            "Wikipedia's aaabdaaabac, bytes, 3 merges, min_frequency 1 (the known answer: "
            "merges aa, ab, aaab)",
            ({tuple(b"aaabdaaabac"): 1}, BYTES, 259, 1),
        ),
        Case(
            "40 random words of a and b, counts 1-3: ties everywhere, 12 merges, min_frequency 1",
            (_random_words(random.Random(1), "ab", 40, 8), BYTES, 256 + 12, 1),
            1,
        ),
        Case(
            "60 random words of a-e, 20 merges, min_frequency 2",
            (_random_words(random.Random(2), "abcde", 60, 7), BYTES, 256 + 20, 2),
            2,
        ),
        Case(
            "abab x3, abc x2 with 'ab' already token 256: a + b reuses id 256, training goes on",
            ({tuple(b"abab"): 3, tuple(b"abc"): 2}, [*BYTES, "ab"], 259, 2),
            3,
        ),
        Case(
            "WordPiece's spelling: join('a', '##b') is 'ab', continuation ids 3-5",
            ({(a, hb, hc): 4, (b, hc): 3, (c, hb, hc): 2}, wordpiece_tokens, 9, 2, _wordpiece_join),
            4,
        ),  # fmt: skip
        Case(
            "min_frequency 3 with a vocab_size never reached: stop when the best pair is rarer",
            ({tuple(b"abcd"): 3, tuple(b"cde"): 2}, BYTES, 1000, 3),
            5,
        ),
        Case("no words at all: no pairs, no merges", ({}, BYTES, 300, 2), 6),
        Case("vocab_size 256 = the bytes: nothing to learn", ({tuple(b"aaaa"): 5}, BYTES, 256), 7),
    ]


# ----------------------------------------------------------------------------------------------
# BPE: applying the merges to a word


def _bpe(merges: list[tuple[str, str]]) -> ByteLevelBPETokenizer:
    """Byte-level BPE with byte b as id b, then one id per merge (distinct results only)."""
    byte_chars = bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return ByteLevelBPETokenizer(vocab, merges, special_tokens=[])


TRAINING_TEXT = [
    "the cat sat on the mat, and the other cat sat on the hat.",
    "then the three of them thanked the theatre for that.",
    "a tiny test of these tokens: 123 + 456 = 579!",
]


def _merge_cases() -> list[Case]:
    wiki = _bpe([("a", "a"), ("a", "b"), ("aa", "ab")])
    order = _bpe([("b", "c"), ("a", "b")])
    trained = ByteLevelBPETokenizer.train(TRAINING_TEXT, vocab_size=256 + 60, min_frequency=2)

    def ids(tok: ByteLevelBPETokenizer, piece: str) -> list[int]:
        return [tok._byte_ids[b] for b in piece.encode("utf-8")]

    cases = [
        Case("aaabdaaabac with merges aa, ab, aaab (the known answer: aaab d aaab a c, ids 258 100 "
             "258 97 99)",
             (wiki, list(b"aaabdaaabac"))),
        Case("abc with merges b+c (rank 0), then a+b (rank 1): the rank decides, not the place",
             (order, list(b"abc")), 1),
        Case("an empty piece: no ids", (trained, []), 2),
        Case("'a': one byte, nothing to merge", (trained, ids(trained, "a")), 3),
    ]  # fmt: skip
    pieces = [" the", " theatre", " that", "thethethe", " cat", " 579", " zebra", " 😀"]
    for seed, piece in enumerate(pieces, 4):
        cases.append(
            Case(f"{piece!r} ({len(piece.encode())} bytes), 60 merges trained on 3 lines",
                 (trained, ids(trained, piece)), seed)
        )  # fmt: skip
    return cases


# ----------------------------------------------------------------------------------------------
# WordPiece: greedy longest-match-first


def _wordpiece_cases() -> list[Case]:
    bert = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "a", "##ff", "##a"]
    small = WordPieceTokenizer(bert, max_input_chars_per_word=9)  # the stage's test vocabulary
    greedy = WordPieceTokenizer(["[UNK]", "a", "ab", "##bc"])
    cases = [
        Case("unaffable: un ##aff ##able", (small, "unaffable")),
        Case("unaffabl: one piece cannot be matched, so the whole word is [UNK]",
             (small, "unaffabl"), 1),
        Case("aaaaaaaaa (9 letters, at the limit of 9): a ##a ##a ...", (small, "a" * 9), 2),
        Case("aaaaaaaaaa (10 letters, over max_input_chars_per_word 9): [UNK]",
             (small, "a" * 10), 3),
        Case("an empty word: no pieces", (small, ""), 4),
        Case("x: a character not in the vocabulary", (small, "x"), 5),
        Case("abc with ab, ##bc but no ##c: greedy takes ab and is stuck, [UNK] "
             "(though a ##bc would do)", (greedy, "abc"), 6),
    ]  # fmt: skip
    rng = random.Random(7)
    lines = [" ".join(_random_word(rng, "abcdef") for _ in range(8)) for _ in range(20)]
    trained = WordPieceTokenizer.train(lines, vocab_size=45, min_frequency=1)
    for seed in range(8, 14):
        word = _random_word(random.Random(seed), "abcdef" if seed % 3 else "abcdefz")
        label = f"{word!r}, a vocabulary of 45 trained on random words of a-f"
        cases.append(Case(label, (trained, word), seed))
    return cases


def _random_word(rng: random.Random, letters: str) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))


# ----------------------------------------------------------------------------------------------
# Unigram: Viterbi


def _unigram(pieces: dict[str, float]) -> UnigramTokenizer:
    """A Unigram model with <unk> as id 0 and the given pieces with their log-probabilities."""
    return UnigramTokenizer([("<unk>", 0.0, UNKNOWN), *((p, s, NORMAL) for p, s in pieces.items())])


def _viterbi_cases() -> list[Case]:
    words = _unigram({
        "▁": -3.0, "▁the": -2.0, "▁t": -3.5, "he": -3.0, "h": -4.0, "e": -4.0, "t": -4.0,
        "▁cat": -2.5, "▁c": -3.5, "c": -4.5, "a": -4.0, "at": -3.0, "s": -4.0, "▁cats": -6.5,
        "xy": -2.0, "y": -4.0,
    })  # fmt: skip
    tie = _unigram({"a": -1.0, "b": -1.0, "ab": -2.0, "▁": -1.0})
    cases = [
        Case("▁the▁cat: whole words beat their pieces", (words, "▁the▁cat")),
        Case("▁cats: ▁cat + s (-6.5) ties ▁cats (-6.5): the first found stays",
             (words, "▁cats"), 1),
        Case("▁th€: € is in no piece, an <unk> node covers it", (words, "▁th€"), 2),
        Case("▁€€e: a run of unknown characters, one <unk> node each", (words, "▁€€e"), 3),
        Case("xy: x only starts the piece xy, so an <unk> node is added but xy wins",
             (words, "xy"), 4),
        Case("ab: the piece ab (-2) ties a + b (-1 - 1): the first found stays", (tie, "ab"), 5),
        Case("an empty text: no pieces", (words, ""), 6),
    ]  # fmt: skip
    for seed in range(7, 12):
        rng = random.Random(seed)
        text = "".join(rng.choice("▁abc") for _ in range(rng.randint(5, 14)))
        chars = "▁ab" if seed == 11 else "▁abc"  # the last model lacks the single piece c
        pieces = {*chars, *("".join(rng.choices("▁abc", k=rng.randint(2, 4))) for _ in range(10))}
        # scores in quarters: every sum is exact in single and double precision alike, and
        # equal scores (ties) are common
        model = _unigram({p: -rng.randint(4, 32) / 4 for p in sorted(pieces)})
        note = ", no piece c" if seed == 11 else ""
        label = f"{text} with {len(pieces)} random pieces of ▁abc{note}, random scores"
        cases.append(Case(label, (model, text), seed))
    return cases


EXERCISES = [
    Exercise(
        slug="bpe_train",
        title="BPE training: merge the most frequent pair, again and again",
        reference=train_merges_naive,
        call=_spelled(_spell_merges),
        cases=_train_cases,
        imports=TRAIN_IMPORTS,
        docstring="""
Learn BPE merges: count the adjacent pairs, fuse the most frequent one, rewrite; repeat.

word_counts: {word as a tuple of token ids: how often it occurs}, e.g. {(104, 105): 7}.
tokens: the starting vocabulary, tokens[i] the string of id i (e.g. the 256 bytes).
While the vocabulary (distinct token strings) is smaller than vocab_size:
  - count every adjacent pair (a, b) in every word, each weighted by its word's count;
  - stop if there are no pairs, or if the best count is below max(min_frequency, 1);
  - the best pair has the highest count; among equal counts, the smallest (a, b) tuple;
  - its token is the string join(tokens[a], tokens[b]), with the next free id, or with the
    id it has already if that string is a token (`_add_token(tokens, index, text)` does
    both, index being {token: id});
  - append (a, b, new id) to the merges and, in every word, replace each (a, b), scanning
    left to right, without overlaps, by the new id (`merge_word(word, a, b, new)`).
Returns (merges, tokens): the merges in order, and the grown vocabulary (a new list).
A failed check shows each merge as "(a, b) -> new 'its token'".""",
        hint="""Each round: count all pairs afresh, take min(pairs, key=lambda p: (-count[p], p)).
A Counter over pairwise(word) for each word, adding the word's count, gives the counts. The
min over (-count, pair) picks the highest count and, among equals, the smallest pair. Then
_add_token for the id (it reuses an existing token's) and merge_word on every word.""",
    ),
    Exercise(
        slug="bpe_merge",
        title="BPE encoding: apply the learned merges, earliest learned first",
        reference=ByteLevelBPETokenizer._merge,
        call=_spelled(_spell_ids),
        function="merge",
        cases=_merge_cases,
        imports=MERGE_IMPORTS,
        docstring="""
Encode one pre-token: fuse its pairs by the merges' order until no learned pair is left.

self: a ByteLevelBPETokenizer; self._ranks maps a learned pair of ids (a, b) to (rank, id of
the fused token), rank 0 for the first merge learned. ids: the pre-token's byte ids, e.g.
[97, 97, 97, 98, ...]. Returns the token ids: repeatedly find, among the adjacent pairs, the
one with the lowest rank, and replace every occurrence of it (left to right, no overlaps:
`merge_word(ids, a, b, fused)`); stop when no adjacent pair has a rank, or one id is left.
A failed check shows the ids as their tokens ("aaab d aaab a c").""",
        hint="""The lowest rank among the current adjacent pairs goes first, wherever it stands.
Scan pairwise(ids), look each pair up in self._ranks, keep the one with the smallest rank; merge
it everywhere with merge_word and look again; stop when no pair is found.""",
    ),
    Exercise(
        slug="wordpiece",
        title="WordPiece: cut a word greedily, longest match first",
        reference=WordPieceTokenizer._word_ids,
        call=_spelled(_spell_ids),
        function="word_ids",
        cases=_wordpiece_cases,
        docstring="""
WordPiece: cut one word into vocabulary pieces, the longest match first, left to right.

self: a WordPieceTokenizer: self.str_to_id maps token strings to ids, self.continuing_prefix
is "##", self._unk_id is the id of [UNK], self.max_input_chars_per_word the longest word it
cuts, self._max_len the longest token's length in characters ("##" included).
word: one word, e.g. "unaffable". Returns its ids, here those of "un", "##aff", "##able": at
each position take the longest piece in the vocabulary, spelled as it is at the start of the
word and with the "##" prefix after that. If nothing matches at some position, or the word is
longer than max_input_chars_per_word, the whole word is [UNK]: [self._unk_id]. An empty word
has no pieces. A failed check shows the ids as their tokens ("un ##aff ##able").""",
        hint="""At each position try the longest candidate first, shortening it until it is a token.
Past the first piece the candidate is "##" + word[start:end]. If even one character is not a
token, return [self._unk_id] for the whole word; else continue from where the match ended.""",
    ),
    Exercise(
        slug="unigram_viterbi",
        title="Unigram: the most probable segmentation, by Viterbi",
        reference=UnigramTokenizer.viterbi,
        call=_spelled(_spell_path),
        cases=_viterbi_cases,
        imports=VITERBI_IMPORTS,
        docstring="""
Unigram: the best segmentation of normalized `text`, as (piece id, start, end) triples.

self: a UnigramTokenizer: self._match maps each piece string it may use to (id, score), the
score a log-probability; self._max_len is the longest piece's length; self.unk_id and
self._unk_score are the id and the score of an <unk> node. text: normalized, e.g. "▁the▁cat".
Returns the segmentation whose scores add up highest, e.g. [(2, 0, 4), (8, 4, 8)], by dynamic
programming: best[j] = max over pieces text[i:j] of best[i] + score(text[i:j]), remembering
where each best path's last piece starts, then tracing back from best[len(text)].
Where no piece of length 1 starts at i, an <unk> node covers text[i:i+1] with score
self._unk_score, so every text has a segmentation. Ties: take start positions i in order and,
for each, the pieces from short to long, the <unk> node last; only a strictly higher score
replaces a path found earlier. Keep the sums in single precision (array("f")), as
sentencepiece does. An empty text gives []. A failed check shows each triple as its piece
and span: "▁the[0:4] ▁cat[4:8]".""",
        hint="""best[j] = max over i of best[i] + score(text[i:j]); keep the argmax i to trace back.
Fill best forwards: for each start i (whose best[i] is final by then), for each end j up to
i + self._max_len, look text[i:j] up in self._match and improve best[j] if strictly better.
Then walk back from the end through the stored starts, and reverse.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package tokenizers_fromscratch exercise ...` (see shared/learn.py)."""
    return exercise_command("tokenizers_fromscratch", EXERCISES, argv)
