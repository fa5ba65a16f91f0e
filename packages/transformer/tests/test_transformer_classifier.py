"""The classifier, its data pipeline and the train/eval commands, on tiny generated data."""

import random

import pytest
import torch

from shared.errors import ConfigError, UsageError
from shared.testing import dataset_or_skip
from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.classify import ClassifyConfig, load_sentences
from transformer.cli import evaluate, train
from transformer.sst2 import build_vocab, collate_fn, length_grouped_batches, read_tsv

WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "plot",
    "actor",
    "story",
    "scene",
    "music",
    "cast",
    "was",
    "is",
    "very",
    "quite",
    "rather",
]


def _synthetic(n: int, seed: int) -> list[tuple[str, int]]:
    """label 1 exactly when the sentence contains "great", anywhere among 3 to 12 words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        label = rng.random() < 0.5
        if label:
            words.insert(rng.randrange(len(words) + 1), "great")
        rows.append((" ".join(words), int(label)))
    return rows


def _write_tsv(path, rows, header=True):
    lines = ["sentence\tlabel"] if header else []
    lines += [f"{s}\t{y}" for s, y in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny classifier trained through the `train` command (shared by the tests below)."""
    root = tmp_path_factory.mktemp("clf")
    train_file = _write_tsv(root / "train.tsv", _synthetic(600, 0))
    dev_file = _write_tsv(root / "dev.tsv", _synthetic(200, 1))
    mp = pytest.MonkeyPatch()
    mp.setenv("RUNS_DIR", str(root / "runs"))
    train([
        f"--train_file={train_file}", f"--dev_file={dev_file}", "--epochs=6", "--batch_size=32",
        "--lr=3e-3", "--warmup=0.1", "--model.d_model=32", "--model.nhead=2",
        "--model.num_layers=1", "--model.dim_feedforward=64", "--model.dropout=0.0",
        "--run_name=tiny",
    ])  # fmt: skip
    yield root
    mp.undo()


def test_tiny_classifier_learns_the_rule(tiny_run, capsys):
    folder = tiny_run / "runs" / "transformer" / "tiny"
    for name in ("errors.md", "confusion_matrix.png", "loss.png", "dev_accuracy.png", "lr.png",
                 "grad_norm.png", "vocab.json", "checkpoints/best/meta.json"):  # fmt: skip
        assert (folder / name).is_file(), name
    rows = [line for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert all(k in rows[0] for k in ('"loss"', '"lr"', '"grad_norm"', '"weight_norm"'))
    best = max(float(r.split('"dev_accuracy": ')[1].split(",")[0]) for r in rows if "dev_acc" in r)
    assert best >= 0.95
    assert "## Confusion matrix" in (folder / "errors.md").read_text()


def test_eval_command_scores_any_tsv(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tiny_run / "runs"))
    rows = [("a great film", 1), ("the plot was", 0), ("great great movie", 1), ("music", 0)]
    data = _write_tsv(tiny_run / "check.tsv", rows, header=False)
    capsys.readouterr()
    evaluate(["--run", "tiny", "--data", str(data)])
    out = capsys.readouterr().out
    assert "accuracy 100.00% (4/4)" in out


def test_resuming_a_finished_run_keeps_its_best_checkpoint(tiny_run, monkeypatch):
    """Resumed at its last step, the run trains no further and evaluates nothing new; the
    report still reads checkpoints/best, carried over from the old run."""
    import json

    monkeypatch.setenv("RUNS_DIR", str(tiny_run / "runs"))
    train(["--resume=tiny", "--run_name=again"])
    runs = tiny_run / "runs" / "transformer"
    best = [json.loads((runs / r / "checkpoints/best/meta.json").read_text())
            for r in ("tiny", "again")]  # fmt: skip
    assert best[1]["step"] == best[0]["step"] and best[1]["metrics"] == best[0]["metrics"]
    assert (runs / "again" / "errors.md").is_file()


def _fake_sst2(monkeypatch) -> None:
    """The registry's sst2 replaced by a few rows with its split names (train, validation)."""
    import datasets as hf_datasets

    from shared import datasets

    rows = {
        "train": (["a great film", "the plot was"], [1, 0]),
        "validation": (["great music", "the cast", "a great great movie"], [1, 0, 1]),
    }
    fake = {
        k: hf_datasets.Dataset.from_dict({"sentence": s, "label": y}) for k, (s, y) in rows.items()
    }
    monkeypatch.setattr(datasets, "load", lambda name: fake if name == "sst2" else None)


def test_default_data_trains_on_glue_train_and_scores_glue_dev(monkeypatch):
    _fake_sst2(monkeypatch)
    splits = load_sentences(ClassifyConfig())
    assert splits["train"] == (["a great film", "the plot was"], [1, 0])
    assert splits["dev"] == (["great music", "the cast", "a great great movie"], [1, 0, 1])


def test_eval_without_data_scores_glue_dev(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tiny_run / "runs"))
    _fake_sst2(monkeypatch)
    capsys.readouterr()
    evaluate(["--run", "tiny"])
    assert "SST-2 dev (GLUE's dev set): accuracy 100.00% (3/3)" in capsys.readouterr().out


def test_sst2_data_is_all_glue_training_rows_and_glue_dev():
    dataset_or_skip("sst2")
    splits = load_sentences(ClassifyConfig())
    assert len(splits["train"][0]) == 64_349 and len(splits["dev"][0]) == 872
    assert splits["dev"][0][0] == "it 's a charming and often affecting journey ."
    assert sum(splits["dev"][1]) == 444


def test_cls_pooling_and_learned_positions_run():
    cfg = ClassifierConfig(d_model=16, nhead=2, num_layers=1, dim_feedforward=32,
                           pooling="cls", positions="learned", norm_first=False)  # fmt: skip
    model = TransformerForSequenceClassification(cfg, vocab_size=20)
    batch = collate_fn([([4, 5, 6], 1), ([7], 0)])
    assert model(batch["input_ids"], batch["padding_mask"]).shape == (2, 2)


def test_padding_does_not_change_a_prediction():
    torch.manual_seed(0)
    cfg = ClassifierConfig(d_model=16, nhead=2, num_layers=2, dim_feedforward=32, dropout=0.0)
    for pooling in ("mean", "cls"):
        cfg.pooling = pooling
        model = TransformerForSequenceClassification(cfg, vocab_size=20).eval()
        alone = model(torch.tensor([[4, 5, 6]]))
        padded = collate_fn([([4, 5, 6], 1), ([7, 8, 9, 10, 11, 12], 0)])
        together = model(padded["input_ids"], padded["padding_mask"])[:1]
        torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def test_collate_pads_dynamically():
    batch = collate_fn([([4, 5], 1), ([6, 7, 8, 9], 0)])
    assert batch["input_ids"].tolist() == [[4, 5, 0, 0], [6, 7, 8, 9]]
    assert batch["padding_mask"].tolist() == [[False, False, True, True], [False] * 4]
    assert batch["labels"].tolist() == [1, 0]


def test_vocab_and_batches():
    vocab = build_vocab(["A b b", "c b"], min_freq=2)
    assert vocab.tokens[4:] == ["b"]  # lower-cased words seen twice; specials first
    batches = length_grouped_batches([1, 5, 2, 4, 3, 6], batch_size=2, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(6))


def test_read_tsv_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a fine film\t1\nno label here\n")
    with pytest.raises(UsageError, match=r"bad.tsv:2 is not `sentence<TAB>label`"):
        read_tsv(bad)
    with pytest.raises(UsageError, match="does not exist"):
        read_tsv(tmp_path / "missing.tsv")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model.d_model=30", "--model.nhead=4"], "multiple of --model.nhead 4"),
        (["--lr=-1"], "--lr must be positive"),
        (["--accumulate=0"], "--accumulate must be at least 1"),
        (["--schedule=step"], "--schedule expects one of"),
        (["--task=regression"], "--task expects one of"),
        (["--epoch=3"], "did you mean --epochs"),
        (["--train_file=x.tsv"], "give both --train_file and --dev_file"),
        (["--task=translation", "--label_smoothing=1.5"], "--label_smoothing must lie in"),
    ],
)
def test_bad_config_is_rejected_and_writes_nothing(argv, message, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match=message):
        train(argv)
    assert not (tmp_path / "runs").exists()


def test_missing_data_file_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(UsageError, match="does not exist"):
        train([f"--train_file={tmp_path}/a.tsv", f"--dev_file={tmp_path}/b.tsv"])
    assert not (tmp_path / "runs").exists()
