"""Byte-level BPE: the known answer, our trainer against the naive one and against the
`tokenizers` library, and HF-trained files loaded into ours (same ids, exact round trip)."""

import json
import random

import pytest

from shared.datasets import build_pystdlib_corpus
from tokenizers_fromscratch import ByteLevelBPETokenizer, TokenizerError, bytes_to_unicode
from tokenizers_fromscratch.bpe_train import merge_word, train_merges, train_merges_naive

BYTES = [chr(i) for i in range(256)]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    """About 300 kB of real text that every Python has (its standard library), split in two."""
    lines = build_pystdlib_corpus(max_chars=300_000).splitlines(keepends=True)
    cut = int(len(lines) * 0.8)
    return lines[:cut], lines[cut:]


def test_known_answer_aaabdaaabac():
    """Wikipedia's BPE example. "aaabdaaabac": "aa" occurs 4 times, fuse it into Z (256):
    "ZabdZabac". Now "Za" and "ab" both occur twice: the tie goes to the smaller pair, (97, 98)
    = "ab" -> Y (257): "ZYdZYac". "ZY" occurs twice -> X (258): "XdXac", i.e. [258, 100, 258,
    97, 99] (minbpe's answer too, though minbpe breaks the tie the other way and gets there via
    "Za")."""
    word = tuple(b"aaabdaaabac")
    for trainer in (train_merges, train_merges_naive):
        merges, tokens = trainer({word: 1}, BYTES, vocab_size=259)
        assert merges == [(97, 97, 256), (97, 98, 257), (256, 257, 258)]
        assert tokens[256:] == ["aa", "ab", "aaab"]
        ids = list(word)
        for left, right, new in merges:
            ids = merge_word(ids, left, right, new)
        assert ids == [258, 100, 258, 97, 99]


def test_merge_word_is_left_to_right_and_non_overlapping():
    assert merge_word([1, 1, 1], 1, 1, 9) == [9, 1]
    assert merge_word([1, 1, 1, 1], 1, 1, 9) == [9, 9]
    assert merge_word([2, 1, 2], 1, 2, 9) == [2, 9]


def _word_counts(lines: list[str]) -> dict[tuple[int, ...], int]:
    counts: dict[tuple[int, ...], int] = {}
    for line in lines:
        for word in line.split(" "):
            key = tuple(word.encode("utf-8"))
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_fast_trainer_equals_naive_trainer_merge_for_merge(corpus):
    words = _word_counts(corpus[0][:1500])
    fast = train_merges(words, BYTES, vocab_size=256 + 200)
    naive = train_merges_naive(words, BYTES, vocab_size=256 + 200)
    assert len(fast[0]) == 200
    assert fast == naive


def test_fast_equals_naive_with_many_ties():
    """A two-letter alphabet makes equal counts common; min_frequency=1 lets training run on
    to pairs seen once."""
    rng = random.Random(0)
    words = {
        tuple(rng.choice(b"ab") for _ in range(rng.randint(1, 12))): rng.randint(1, 3)
        for _ in range(300)
    }
    fast = train_merges(words, BYTES, vocab_size=256 + 150, min_frequency=1)
    assert fast == train_merges_naive(words, BYTES, vocab_size=256 + 150, min_frequency=1)
    assert len(fast[1]) == 256 + 150


def test_a_merge_that_makes_an_existing_token_reuses_its_id():
    """If the initial vocabulary already holds "ab" (a special token, say), fusing a + b reuses
    id 256, and training continues until the vocabulary (not the merge count) is full."""
    words = {tuple(b"abab"): 3, tuple(b"abc"): 2}
    for trainer in (train_merges, train_merges_naive):
        merges, tokens = trainer(words, [*BYTES, "ab"], vocab_size=259)
        assert merges[0] == (97, 98, 256)
        assert len(merges) == 3 and tokens[257:] == ["abab", "abc"]


@pytest.fixture(scope="module")
def hf_files(corpus, tmp_path_factory):
    """The `tokenizers` library's byte-level BPE trained on the corpus, saved in HF format."""
    hf = pytest.importorskip("tokenizers", reason="the tokenizers library is a dev dependency")
    tok = hf.ByteLevelBPETokenizer()
    tok.train_from_iterator(
        corpus[0],
        vocab_size=1000,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<|endoftext|>"],
    )
    folder = tmp_path_factory.mktemp("hf_bpe")
    tok.save_model(str(folder))
    return tok, folder / "vocab.json", folder / "merges.txt"


def test_our_trainer_learns_the_same_vocabulary_as_the_tokenizers_library(corpus, hf_files):
    _, vocab_json, merges_txt = hf_files
    ours = ByteLevelBPETokenizer.train(corpus[0], 1000, special_tokens=["<|endoftext|>"])
    theirs = ByteLevelBPETokenizer.from_files(vocab_json, merges_txt)
    assert ours.merges == theirs.merges
    assert ours.id_to_str == theirs.id_to_str


def test_loaded_hf_files_give_identical_ids_and_exact_round_trips(corpus, hf_files):
    hf, vocab_json, merges_txt = hf_files
    ours = ByteLevelBPETokenizer.from_files(vocab_json, merges_txt)
    assert ours.special_tokens == {"<|endoftext|>": 0}
    held_out = corpus[1] + [
        "",
        " ",
        "  two  spaces\t\ttabs\n\n",
        "naïve café, Ünïcödé: 北京 😀👍🏽 ﬁ",
        "it's 1,234.56 dollars—'quoted' \"double\"",
        "\x00\x01 control \x7f bytes",
    ]
    for line in held_out:
        ids = ours.encode(line)
        assert ids == hf.encode(line).ids, line
        assert ours.decode(ids) == line
    assert ours.encode("".join(held_out)) == hf.encode("".join(held_out)).ids


def test_special_tokens_are_never_split(hf_files):
    hf, vocab_json, merges_txt = hf_files
    ours = ByteLevelBPETokenizer.from_files(vocab_json, merges_txt)
    eot = ours.token_to_id("<|endoftext|>")
    for text in [
        "<|endoftext|>",
        "a<|endoftext|>b",
        "def f():<|endoftext|><|endoftext|>\n",
        "x <|endoftext|> y",
        "<|endoftext|",
    ]:
        ids = ours.encode(text)
        assert ids == hf.encode(text).ids, text
        assert ids.count(eot) == text.count("<|endoftext|>")
        assert ours.decode(ids) == text


def test_decode_of_a_cut_character_gives_the_replacement_character(hf_files):
    _, vocab_json, merges_txt = hf_files
    ours = ByteLevelBPETokenizer.from_files(vocab_json, merges_txt)
    ids = ours.encode("😀")
    assert len(ids) > 1 and ours.decode(ids) == "😀"
    assert "\ufffd" in ours.decode(ids[:1])


def test_save_load_and_hf_files_round_trip(corpus, tmp_path):
    tok = ByteLevelBPETokenizer.train(corpus[0][:2000], 400, special_tokens=["<|endoftext|>"])
    tok.save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["kind"] == "bpe" and len(data["vocab"]) == 400
    again = ByteLevelBPETokenizer.load(tmp_path)
    vocab_json, merges_txt = tok.save_hf_files(tmp_path)
    from_hf = ByteLevelBPETokenizer.from_files(vocab_json, merges_txt)
    text = "".join(corpus[1][:200]) + "<|endoftext|>"
    assert again.encode(text) == tok.encode(text) == from_hf.encode(text)


def test_bytes_to_unicode_is_gpt2s_map():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


def test_bad_files_fail_with_clear_errors(tmp_path):
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nx y\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match="not in the vocabulary"):
        ByteLevelBPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    with pytest.raises(TokenizerError, match="cannot read"):
        ByteLevelBPETokenizer.from_files(tmp_path / "missing.json", tmp_path / "merges.txt")
    with pytest.raises(TokenizerError, match="256 byte characters"):
        ByteLevelBPETokenizer({"a": 0}, [])
    with pytest.raises(TokenizerError, match="smaller than"):
        ByteLevelBPETokenizer.train(["abc"], vocab_size=100)
