"""The commands end to end: train on in-memory pairs, translate with a heatmap, evaluate."""

import json
import random

import pytest
import torch

from attention.cli import evaluate, train, translate
from attention.train import TrainConfig, load_translator, translator_task
from shared.config import parse_config
from shared.errors import ConfigError, DatasetError
from shared.testing import dataset_or_skip
from shared.trainer import run_training
from shared.training import setup

# A toy language pair: each "German" word has one English word, the order is kept.
LEXICON = {
    "Ein": "A", "Mann": "man", "Frau": "woman", "Hund": "dog", "fährt": "rides",
    "sieht": "sees", "Fahrrad": "bike", "Ball": "ball", "rot": "red", "groß": "big",
}  # fmt: skip


def toy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    nouns = ["Mann", "Frau", "Hund", "Fahrrad", "Ball"]
    pairs = []
    for _ in range(n):
        words = ["Ein", rng.choice(nouns), rng.choice(["fährt", "sieht"]), rng.choice(nouns)]
        if rng.random() < 0.5:
            words.insert(1, rng.choice(["rot", "groß"]))
        pairs.append((" ".join(words) + ".", " ".join(LEXICON[w] for w in words) + "."))
    return pairs


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One RUNS_DIR for the module, so the tiny run is trained once and shared."""
    folder = tmp_path_factory.mktemp("runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster, especially on a busy machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNS_DIR", str(folder))
        yield folder / "attention"
    torch.set_num_threads(before)


@pytest.fixture
def runs(tmp_path, monkeypatch, runs_dir):
    """A fresh, empty RUNS_DIR for tests that check nothing gets written."""
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs" / "attention"


TINY = [
    "--epochs=12", "--batch-size=16", "--lr=1e-2", "--min-freq=1", "--beam-size=3",
    "--model.emb-dim=24", "--model.hidden=24", "--model.dropout=0", "--precision=fp32",
    "--val-bleu-sentences=20", "--device=cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(runs_dir):
    cfg = parse_config(TrainConfig, [*TINY, "--run-name=toy"], prog="attention train")
    job = translator_task(cfg, toy_pairs(240, 0), toy_pairs(20, 1), toy_pairs(30, 2))
    trained = run_training(job, setup(cfg))
    (test_bleu,) = [r["test_bleu"] for r in trained.run.metrics() if "test_bleu" in r]
    return trained.run, {**trained.final, "test_bleu": test_bleu}


def test_training_on_in_memory_pairs_writes_a_complete_run(tiny_run):
    run, results = tiny_run
    names = {p.name for p in run.folder.iterdir()}
    expected = {"config.json", "metrics.jsonl", "checkpoints", "vocab_de.json", "vocab_en.json"}
    assert expected | {"loss.png", "attention.png", "test_translations.en"} <= names
    assert results["test_bleu"] > 80, results  # a word-for-word toy language is easy
    rows = [json.loads(line) for line in (run.folder / "metrics.jsonl").open()]
    assert sum("val_loss" in r for r in rows) == 12
    model, src_vocab, _, cfg = load_translator(run)
    assert cfg.model.hidden == 24 and len(src_vocab) == 4 + len(LEXICON) + 1  # and "."


def test_translate_prints_the_translation_and_writes_a_heatmap(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    png = tmp_path / "map.png"
    translate(["Ein", "Hund", "sieht", "Ball.", "--run=toy", f"--heatmap={png}"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "A dog sees ball."
    assert out[-1] == f"attention heatmap: {png}"
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5_000
    translate(["Ein Katze fährt.", "--beam-size=1"])  # the latest run, greedy; Katze is unknown
    out = capsys.readouterr().out
    assert "never seen (read as <unk>): Katze" in out
    assert (run.folder / "translations" / "ein_katze_fährt.png").is_file()


def test_bad_options_fail_before_anything_is_written(runs):
    with pytest.raises(ConfigError, match="unknown option --epoch for attention train"):
        train(["--epoch=3"])
    with pytest.raises(ConfigError, match="--model.attention expects one of"):
        train(["--model.attention=luong"])
    with pytest.raises(ConfigError, match="--beam_size must be at least 1, got 0"):
        translate(["Hallo", "--beam-size=0"])
    assert not runs.exists()


def test_missing_dataset_is_a_one_line_error(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("DATASETS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    with pytest.raises(DatasetError, match="multi30k"):
        train(["--epochs=1"])
    assert not runs.exists()


def test_eval_scores_a_run_on_the_real_test_set(tiny_run, capsys):
    dataset_or_skip("multi30k")
    evaluate(["--run=toy", "--limit=10", "--beam-size=1"])
    out = capsys.readouterr().out
    assert out.startswith("BLEU ") and "multi30k test_2016_flickr (10 sentences" in out
