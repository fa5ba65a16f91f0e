"""Fine-tuning: it learns, it keeps the model chosen on held-out training rows, it resumes
exactly after a real Ctrl-C, and bad input fails with one clear line."""

import json
import random
from pathlib import Path

import pytest
import torch

from bert.finetune import FinetuneConfig, FinetuneRun, Rows, make_optimizer
from bert.glue import get_task
from bert.hf import load_folder, save_folder
from bert.model import BertConfig, BertForMaskedLM, BertForSequenceClassification
from bert.tokenize import BertTokenizer
from shared.commands import run_command
from shared.testing import dataset_or_skip
from shared.trainer import run_training
from shared.training import setup
from tokenizers_fromscratch.wordpiece import WordPieceTokenizer

WORDS = [
    "good",
    "bad",
    "movie",
    "film",
    "plot",
    "actor",
    "scene",
    "story",
    "long",
    "short",
    "very",
    "quite",
    "the",
    "a",
]
TINY = [
    "--scratch.hidden_size=32",
    "--scratch.num_hidden_layers=1",
    "--scratch.num_attention_heads=2",
    "--scratch.intermediate_size=64",
]


def _tokenizer() -> BertTokenizer:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizer(WordPieceTokenizer(vocab))


def _keyword_rows(tokenizer: BertTokenizer, n: int, seed: int) -> Rows:
    """Random phrases; the label says whether "good" is in it (a rule attention can learn)."""
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        words = rng.choices([w for w in WORDS if w != "good"], k=rng.randint(2, 8))
        label = rng.random() < 0.5
        if label:
            words.insert(rng.randrange(len(words) + 1), "good")
        rows.append(tokenizer.encode(" ".join(words)))
        labels.append(float(label))
    return Rows(rows, labels)


def test_finetuning_learns_a_keyword_rule_and_keeps_the_selected_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    tokenizer = _tokenizer()
    splits = {
        "train": _keyword_rows(tokenizer, 2000, 0),
        "select": _keyword_rows(tokenizer, 200, 1),
        "dev": _keyword_rows(tokenizer, 200, 2),
    }
    cfg = FinetuneConfig(
        init="none",
        max_steps=150,
        time_limit=0,
        eval_interval=50,
        lr=2e-3,
        warmup_steps=10,
        device="cpu",
        threads=1,
        precision="fp32",
        seed=3,
        run_name="keyword",
    )
    env = setup(cfg)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    job = FinetuneRun(cfg, get_task("sst2"), tokenizer, splits, config, None, "random weights")
    trained = run_training(job.training_task(), env)
    run, best = trained.run, trained.state.best
    assert best["select_accuracy"] >= 0.95, best  # chance is 0.5
    history = [json.loads(line) for line in (run.folder / "metrics.jsonl").read_text().splitlines()]
    selects = [r["select_accuracy"] for r in history if "select_accuracy" in r]
    assert best["select_accuracy"] == max(selects)  # the best by the held-out training rows
    saved = load_folder(run.folder / "model", "BertForSequenceClassification")
    batch = splits["dev"].batch(list(range(16)), tokenizer.pad_id)
    with torch.no_grad():  # the saved model is the selected one, and predicts like it did
        accuracy = (
            (saved(batch["input_ids"], batch["attention_mask"]).argmax(-1) == batch["labels"])
            .float()
            .mean()
        )
    assert accuracy >= 0.8


def test_weight_decay_spares_norms_biases_and_embeddings():
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=20,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
        )
    )
    optimizer = make_optimizer(model, FinetuneConfig(max_steps=1))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in optimizer.param_groups[0]["params"]}
    assert "bert.layers.0.ff.fc_in.weight" in decayed and "classifier.weight" in decayed
    assert not any(n.endswith("bias") or "norm" in n or "embeddings" in n for n in decayed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task=foo"], "not in the GLUE table"),
        (["--task=cola"], "has no dataset in the registry"),
        (["--lr=-1"], "--lr"),
        (["--init=/nowhere/at/all"], "--init /nowhere/at/all"),
    ],
)
def test_bad_options_fail_with_one_line_and_exit_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    assert run_command("finetune", ["--stage=bert", "--max_steps=1", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bert").exists() or not any((tmp_path / "bert").iterdir())


def test_train_rows_trains_on_a_random_subset_and_refuses_more_than_there_are(
    tmp_path, monkeypatch, capsys
):
    dataset_or_skip("sst2")
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    common = ["--stage=bert", "--init=none", *TINY, "--max_steps=1", "--threads=1"]
    assert run_command("finetune", [*common, "--train_rows=50", "--select_rows=20"]) == 0
    assert "sst2: 50 training rows, 20 held out" in capsys.readouterr().out
    assert run_command("finetune", [*common, "--train_rows=10000000"]) == 2
    assert "--train_rows 10000000: only " in capsys.readouterr().err


def test_a_vocabulary_that_does_not_match_the_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(
        transformers.BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    hf.save_pretrained(tmp_path / "model")
    _tokenizer().save(tmp_path / "model")  # 19 tokens, the checkpoint has 50
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    dataset_or_skip("sst2")
    code = run_command(
        "finetune", ["--stage=bert", "--max_steps=1", f"--init={tmp_path / 'model'}"]
    )
    assert code == 2
    assert "vocab.txt has 19 tokens but the model was trained with 50" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_rows_longer_than_the_checkpoint_positions_are_refused(tmp_path, monkeypatch, capsys):
    """A model pretrained with 64 positions cannot take --max_length 66: say so before training."""
    tokenizer = _tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    save_folder(BertForMaskedLM(config), tmp_path / "model")
    tokenizer.save(tmp_path / "model")
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    dataset_or_skip("sst2")
    args = ["--stage=bert", "--max_steps=1", "--max_length=66", f"--init={tmp_path / 'model'}"]
    assert run_command("finetune", args) == 2
    err = capsys.readouterr().err
    assert "--max_length 66 is longer than the 64 positions" in err
    assert "give --max_length 64 or less" in err
    assert not (tmp_path / "runs").exists()


def _losses(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_a_source_gives_the_task_its_rows_with_augmented_copies_and_bad_labels_fail(
    tmp_path, monkeypatch, capsys
):
    """`--dataset jsonl:DIR` replaces the registry: train.jsonl trains (less the selection rows),
    validation.jsonl is the reported split; `--augment.copies` adds changed training rows."""
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 60), ("validation", 12)):
        rows = [{"sentence": f"a {'good' if i % 2 else 'bad'} film {i}", "label": i % 2}
                for i in range(n)]  # fmt: skip
        (data / f"{split}.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    common = ["--stage=bert", "--init=none", *TINY, "--max_steps=1", "--threads=1",
              f"--dataset=jsonl:{data}", "--select_rows=10"]  # fmt: skip
    assert run_command("finetune", [*common, "--augment.copies=2"]) == 0
    assert "sst2: 150 training rows, 10 held out to select the checkpoint, 12 dev rows" in (
        capsys.readouterr().out
    )
    (data / "train.jsonl").write_text('{"sentence": "fine", "label": 2}\n', encoding="utf-8")
    assert run_command("finetune", common) == 2
    assert f"{data / 'train.jsonl'}:1: label 2 is not one of 0, 1" in capsys.readouterr().err
