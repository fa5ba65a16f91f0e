"""The translator on generated data: it learns to copy sequences; beam 1 is greedy; commands."""

import json
import random

import pytest
import torch

from transformer.cli import evaluate, train, translate
from transformer.decoding import (
    beam_search,
    beam_search_batch,
    decode_step,
    greedy_decode,
    start_cache,
)
from transformer.translator import TransformerTranslator, TranslatorConfig

SYMBOLS = ["ka", "lo", "mi", "nu", "pe", "ro", "su", "ti"]


def _copy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """The "translation" is the sentence itself: the decoder must find each word by attention."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(SYMBOLS) for _ in range(rng.randint(2, 6))]
        pairs.append((" ".join(words), " ".join(words)))
    return pairs


def _write(path, pairs):
    path.write_text("".join(f"{de}\t{en}\n" for de, en in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_translation(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt")
    files = {
        "train": _write(root / "train.tsv", _copy_pairs(1000, 0)),
        "val": _write(root / "val.tsv", _copy_pairs(40, 1)),
        "test": _write(root / "test.tsv", _copy_pairs(40, 2)),
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("RUNS_DIR", str(root / "runs"))
    train([
        "--task=translation", *(f"--{k}_file={v}" for k, v in files.items()), "--epochs=8",
        "--batch_size=32", "--lr=3e-3", "--warmup=0.1", "--min_freq=1", "--label_smoothing=0",
        "--beam_size=2", "--val_bleu_sentences=40", "--model.d_model=64", "--model.nhead=4",
        "--model.num_encoder_layers=2", "--model.num_decoder_layers=2",
        "--model.dim_feedforward=128", "--model.dropout=0", "--run_name=copy",
    ])  # fmt: skip
    yield root
    mp.undo()


def test_tiny_translator_learns_to_copy(tiny_translation):
    folder = tiny_translation / "runs" / "transformer" / "copy"
    results = json.loads((folder / "results.json").read_text())
    assert results["test_bleu"] > 85, results
    for name in ("samples.md", "val_bleu.png", "lr.png", "src_vocab.json", "tgt_vocab.json"):
        assert (folder / name).is_file(), name


def test_translate_and_eval_commands(tiny_translation, capsys, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tiny_translation / "runs"))
    capsys.readouterr()
    translate(["--run=copy", "ka lo mi"])
    assert capsys.readouterr().out.strip() == "ka lo mi"
    evaluate(["--run=copy", "--beam_size=1"])
    out = capsys.readouterr().out
    assert "BLEU" in out and "beam 1" in out


def _random_model(**overrides) -> TransformerTranslator:
    torch.manual_seed(0)
    cfg = TranslatorConfig(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=2,
                           dim_feedforward=64, dropout=0.0, **overrides)  # fmt: skip
    return TransformerTranslator(cfg, src_vocab_size=20, tgt_vocab_size=20).eval()


def test_beam_of_one_is_greedy():
    model = _random_model()
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0], [12, 13, 0, 0, 0]])  # padded batch
    greedy = greedy_decode(model, src, max_len=12)
    for row, lengths in zip(range(3), (5, 3, 2), strict=True):
        ids, _ = beam_search(model, src[row, :lengths], beam_size=1, max_len=12)
        assert ids == greedy[row]


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy():
    model = _random_model()
    src = torch.tensor([[4, 5, 6, 7]])

    @torch.no_grad()
    def logprob(ids):
        tgt = torch.tensor([[1, *ids]])
        logp = model(src, tgt[:, :-1]).log_softmax(-1)
        return float(logp[0, torch.arange(len(ids)), torch.tensor(ids)].sum())

    greedy = greedy_decode(model, src, max_len=8)[0]
    beam, _ = beam_search(model, src[0], beam_size=4, alpha=0.0, max_len=8)
    if len(beam) == len(greedy):
        assert logprob(beam) >= logprob(greedy) - 1e-5


@pytest.mark.parametrize("norm_first", [True, False])
def test_kv_cache_gives_the_full_decoders_logits(norm_first):
    """Feeding one word at a time with a KV cache = re-running the decoder on the prefix."""
    model = _random_model(norm_first=norm_first).double()
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 0, 0]])  # padded batch
    tgt_in = torch.tensor([[1, 7, 8, 9, 0, 12], [1, 13, 14, 15, 16, 17]])  # a <pad> in row 0
    memory, src_pad = model.encode(src)
    full = model.decode(tgt_in, memory, src_pad)  # (B, T, V)
    cache = start_cache(model, memory, src_pad)
    for t in range(tgt_in.size(1)):
        torch.testing.assert_close(decode_step(model, tgt_in[:, t], cache), full[:, t])
    assert cache.length == 6 and cache.self_kv[0][0].shape == (2, 4, 6, 8)


def test_batched_beam_search_equals_one_sentence_at_a_time(one_thread):
    """The beams of many sentences as rows of one batch, with a KV cache: the same outputs."""
    model = _random_model(norm_first=False).double()
    rng = random.Random(0)
    sources = [[rng.randrange(4, 20) for _ in range(rng.randint(1, 7))] for _ in range(6)]
    lengths = set()
    for beam_size, alpha, max_len in [(3, 0.6, 16), (5, 0.0, 16), (4, 0.6, 4)]:
        batched = beam_search_batch(model, sources, beam_size, alpha, max_len)
        for src, (ids, score) in zip(sources, batched, strict=True):
            alone, alone_score = beam_search(model, torch.tensor(src), beam_size, alpha, max_len)
            assert ids == alone, (src, beam_size)
            assert score == pytest.approx(alone_score, abs=1e-9)
            lengths.add(len(ids))
    assert len(lengths) >= 3, lengths  # outputs of several lengths, some cut at max_len
    assert beam_search_batch(model, [], 3) == []


def test_shared_and_tied_embeddings():
    shared = _random_model(share_embeddings=True)
    assert shared.src_embed is shared.tgt_embed
    assert shared.output.weight is shared.tgt_embed.weight
    separate = _random_model(share_embeddings=False, tie_output=False)
    assert separate.src_embed is not separate.tgt_embed
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(shared) < n(separate)
    with pytest.raises(ValueError, match="joint vocabulary"):
        TransformerTranslator(TranslatorConfig(share_embeddings=True), 10, 12)


def test_decoder_is_causal():
    """Changing a later target word leaves the logits of earlier positions unchanged."""
    model = _random_model()
    src = torch.tensor([[4, 5, 6]])
    a = model(src, torch.tensor([[1, 7, 8, 9]]))
    b = model(src, torch.tensor([[1, 7, 8, 15]]))
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_joint_vocabulary_for_shared_embeddings():
    from transformer.translate_task import build_vocabs

    pairs = [("Ein Hund läuft .", "A dog runs ."), ("Ein Mann .", "A man .")]
    src, tgt = build_vocabs(pairs, min_freq=1, joint=True)
    assert src is tgt and {"Hund", "dog", "."} <= set(src.tokens)
    src, tgt = build_vocabs(pairs, min_freq=1, joint=False)
    assert "dog" not in src.tokens and "Hund" not in tgt.tokens


def test_task_is_read_from_a_config_file(tmp_path, monkeypatch):
    from shared.errors import ConfigError

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    config = tmp_path / "mt.toml"
    config.write_text('task = "translation"\nlabel_smoothing = 1.5\n')
    with pytest.raises(ConfigError, match="--label_smoothing must lie in"):
        train(["--config", str(config)])
    assert not (tmp_path / "runs").exists()
