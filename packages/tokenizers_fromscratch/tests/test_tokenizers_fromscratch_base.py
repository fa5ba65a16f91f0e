"""The shared interface: the character tokenizer, save/load of every kind, and the errors."""

import json

import pytest

from tokenizers_fromscratch import (
    ByteLevelBPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    UnigramTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
)

LINES = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "All:\nSpeak, speak.\n",
    "You are all resolved rather to die than to famish?\n",
] * 10


@pytest.fixture(scope="module")
def trained() -> dict[str, Tokenizer]:
    """One tokenizer of each kind, trained in-process on a few lines."""
    return {
        "char": CharTokenizer.train(LINES, special_tokens=["<|endoftext|>"]),
        "bpe": ByteLevelBPETokenizer.train(LINES, 300, special_tokens=["<|endoftext|>"]),
        "wordpiece": WordPieceTokenizer.train(LINES, 100),
        "unigram": UnigramTokenizer.train(LINES, 60),
    }


def test_char_tokenizer():
    tok = CharTokenizer.train(["hello world"])
    assert tok.id_to_str == sorted(set("hello world"))
    assert tok.decode(tok.encode("low held")) == "low held"
    with pytest.raises(TokenizerError, match=r"'z' \(U\+007A\)"):
        tok.encode("zebra")
    small = CharTokenizer.train(["aaabbc"], vocab_size=3, unk_token="<unk>")
    assert small.tokens("abcd") == ["a", "b", "<unk>", "<unk>"]
    with pytest.raises(TokenizerError, match="unk_token"):
        CharTokenizer.train(["aaabbc"], vocab_size=2)


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece", "unigram"])
def test_every_kind_saves_readable_json_and_loads_back(trained, tmp_path, kind):
    tok = trained[kind]
    path = tok.save(tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["kind"] == kind and data["format_version"] == 1
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok)
    assert again.id_to_str == tok.id_to_str
    assert again.special_tokens == tok.special_tokens
    for line in LINES[:3]:
        assert again.encode(line, add_special_tokens=True) == tok.encode(line, True)
        assert again.decode(again.encode(line)) == tok.decode(tok.encode(line))
    assert again.encode_batch(LINES[:3]) == [tok.encode(x) for x in LINES[:3]]


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_round_trip_on_training_text(trained, kind):
    tok = trained[kind]
    for line in LINES[:3]:
        expected = " ".join(line.split()) if kind == "unigram" else line  # spaces normalized
        assert tok.decode(tok.encode(line)) == expected


def test_special_tokens_in_text_stay_whole(trained):
    for kind in ("char", "bpe"):
        tok = trained[kind]
        eot = tok.token_to_id("<|endoftext|>")
        ids = tok.encode("Speak<|endoftext|>speak")
        assert ids.count(eot) == 1 and tok.decode(ids) == "Speak<|endoftext|>speak"
    wp = trained["wordpiece"]
    assert wp.tokens("speak [SEP] speak")[1] == "[SEP]"


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece", "unigram"])
def test_unknown_ids_and_tokens_are_clear_errors(trained, kind):
    tok = trained[kind]
    n = tok.vocab_size
    with pytest.raises(TokenizerError, match=rf"token id {n} is out of range.*0\.\.{n - 1}"):
        tok.decode([0, n])
    with pytest.raises(TokenizerError, match="token id -1 is out of range"):
        tok.id_to_token(-1)
    with pytest.raises(TokenizerError, match="'no such token' is not in"):
        tok.token_to_id("no such token")


def test_loading_errors_name_the_problem(trained, tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"kind": "magic"}', encoding="utf-8")
    every_kind = "one of added, bpe, char, sentencepiece, unigram, wordpiece, got"
    with pytest.raises(TokenizerError, match=every_kind):
        load_tokenizer(tmp_path)
    trained["char"].save(tmp_path)
    with pytest.raises(TokenizerError, match="holds a 'char' tokenizer, not 'bpe'"):
        ByteLevelBPETokenizer.load(tmp_path)


def test_subclasses_register_themselves(tmp_path):
    """The registry fills itself (`__init_subclass__`); base.py imports none of its subclasses."""
    import ast
    import inspect

    from tokenizers_fromscratch import base

    tree = ast.parse(inspect.getsource(base))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m and m.startswith("tokenizers_fromscratch")}

    class ReversedCharTokenizer(CharTokenizer):
        kind = "char-reversed-test"

        def _encode_ordinary(self, text):
            return super()._encode_ordinary(text[::-1])

    class TweakedChar(CharTokenizer):  # inherits kind "char": files still load as CharTokenizer
        pass

    try:
        assert base.kind_registry()["char-reversed-test"] is ReversedCharTokenizer
        assert base.kind_registry()["char"] is CharTokenizer
        tok = ReversedCharTokenizer.train(["abc"])
        tok.save(tmp_path)
        again = load_tokenizer(tmp_path)
        assert type(again) is ReversedCharTokenizer and again.encode("ab") == tok.encode("ab")
        TweakedChar.train(["abc"]).save(tmp_path)
        assert type(load_tokenizer(tmp_path)) is CharTokenizer
        with pytest.raises(TypeError, match="kind 'char' is taken by"):
            type("OtherChar", (CharTokenizer,), {"kind": "char"})
    finally:
        base._REGISTRY.pop("char-reversed-test", None)
