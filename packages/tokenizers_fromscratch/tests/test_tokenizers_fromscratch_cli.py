"""The `train` and `encode` commands end to end, on a few thousand lines of pystdlib (a dataset
built from this Python's own standard library, so it needs no download and no mirror)."""

import json

import pytest

from shared.errors import ConfigError, UsageError
from tokenizers_fromscratch import load_tokenizer
from tokenizers_fromscratch.cli import encode, train


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    return tmp_path / "tokenizers_fromscratch"


@pytest.mark.parametrize(
    ("kind", "size"), [("bpe", 400), ("wordpiece", 300), ("unigram", 200), ("char", 0)]
)
def test_train_then_encode(runs, capsys, kind, size):
    train(
        [
            f"--kind={kind}",
            f"--vocab-size={size}",
            "--dataset=pystdlib",
            "--max-lines=1500",
            f"--run-name={kind}",
        ]
    )
    out = capsys.readouterr().out
    assert "UTF-8 bytes per token" in out and f"wrote {runs / kind}" in out
    tok = load_tokenizer(runs / kind)
    assert tok.kind == kind
    assert kind == "char" or tok.vocab_size <= size
    metrics = json.loads((runs / kind / "metrics.jsonl").read_text(encoding="utf-8"))
    assert metrics["vocab_size"] == tok.vocab_size and metrics["train_seconds"] > 0

    encode(["def main(): return 0", f"--run={kind}"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"tokenizer: {runs / kind} ({kind},")
    assert out[1].startswith("|") and out[1].endswith("|")
    ids = json.loads(out[2].removeprefix("ids: "))
    assert ids == tok.encode("def main(): return 0")
    assert out[3] == f"{len(ids)} tokens for 20 UTF-8 bytes: {20 / len(ids):.2f} bytes per token"


def test_encode_shows_boundaries_and_picks_runs_by_kind(runs, capsys):
    train(["--kind=bpe", "--vocab-size=300", "--dataset=pystdlib", "--max-lines=500"])
    train(["--kind=char", "--dataset=pystdlib", "--max-lines=500"])
    capsys.readouterr()
    encode(["ab\ncd"])  # the latest run: char
    assert "|a|b|\\n|c|d|" in capsys.readouterr().out
    encode(["--kind=bpe", "return x"])
    out = capsys.readouterr().out
    assert "(bpe, 300 tokens)" in out and "|re" in out


def test_errors_say_what_to_do(runs):
    with pytest.raises(UsageError, match="train one first"):
        encode(["hello"])
    with pytest.raises(UsageError, match="no bpe tokenizer"):
        encode(["hello", "--kind=bpe"])
    with pytest.raises(ConfigError, match="--kind expects one of"):
        train(["--kind=sentencepiece"])
    with pytest.raises(ConfigError, match="vocab-size must be positive"):
        train(["--kind=bpe", "--vocab-size=0"])
    with pytest.raises(UsageError, match="unknown dataset"):
        train(["--dataset=nope"])
