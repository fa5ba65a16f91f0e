"""The commands on tiny configs and made-up tasks: fine-tuning learns, pretraining lowers its
loss, eval and generate read a run back, bad input fails with one line and writes nothing, and
a real Ctrl-C then --resume continues to the same losses."""

import json
import random
import shutil
from pathlib import Path

import pytest

from shared.commands import run_command

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "car", "box"]
TINY = [
    "--model.d_model=48",
    "--model.d_kv=12",
    "--model.num_heads=4",
    "--model.d_ff=96",
    "--model.num_layers=2",
    "--model.num_decoder_layers=2",
    "--model.dropout=0.0",
    "--threads=1",
    "--precision=fp32",
    "--device=cpu",
]


def write_tasks(folder: Path, rows: int = 1200) -> Path:
    """Two tasks: a keyword rule (is "good" among the words?) and naming the first word."""
    rng = random.Random(0)
    for split, n in (("train", rows), ("test", 100)):
        keyword, first = [], []
        for _ in range(n):
            words = rng.choices(WORDS, k=rng.randint(2, 6))
            label = rng.random() < 0.5
            if label:
                words.insert(rng.randrange(len(words) + 1), "good")
            keyword.append(f"keyword: {' '.join(words)}\t{'yes' if label else 'no'}")
            words = rng.choices(WORDS, k=rng.randint(1, 5))
            first.append(f"first: {' '.join(words)}\t{words[0]}")
        (folder / f"keyword.{split}.tsv").write_text("\n".join(keyword) + "\n")
        (folder / f"first.{split}.tsv").write_text("\n".join(first) + "\n")
    return folder


def finetune_args(data: Path, *extra: str) -> list[str]:
    return [
        "--stage=t5", f"--data_dir={data}", "--tasks=keyword,first", "--init=none",
        "--vocab_size=64", "--num_sentinels=4", "--select_rows=100", "--time_limit=0",
        "--batch_size=32", "--warmup_steps=20", "--lr=2e-2", "--label_smoothing=0",
        "--max_input_length=24", "--max_target_length=12", *TINY, *extra,
    ]  # fmt: skip


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    return tmp_path / "runs"


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fine-tuned tiny run shared by the tests that read a run back."""
    root = tmp_path_factory.mktemp("t5")
    data = write_tasks(root)
    patch = pytest.MonkeyPatch()
    patch.setenv("RUNS_DIR", str(root / "runs"))
    try:
        args = finetune_args(data, "--max_steps=300", "--eval_interval=100", "--run_name=tiny")
        assert run_command("finetune", args) == 0
        yield root / "runs" / "t5" / "tiny", data, patch
    finally:
        patch.undo()


def test_finetuning_learns_two_mixed_tasks_and_keeps_the_selected_model(trained):
    folder, _, _ = trained
    rows = metrics(folder)
    scores = [r["select_score"] for r in rows if "select_score" in r]
    assert len(scores) == 3
    best = max(scores)
    kept = [r for r in rows if r.get("select_score") == best][0]
    assert kept["select_keyword_accuracy"] >= 0.95, kept  # chance is 0.5
    assert kept["select_first_accuracy"] >= 0.7, kept  # chance is 0.1
    assert (folder / "checkpoints" / "best" / "meta.json").is_file()
    meta = json.loads((folder / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["fit"]["step"] == kept["step"]  # best = the step chosen on held-out rows
    assert meta["prefixes"] == ["keyword:", "first:"]


def test_eval_and_generate_read_the_run_back(trained, capsys):
    folder, _, patch = trained
    capsys.readouterr()
    assert run_command("eval", ["--stage=t5", f"--run={folder}", "--beam_size=2"]) == 0
    results = json.loads((folder / "results.json").read_text())
    assert results["keyword"]["rows"] == 100 and results["keyword"]["accuracy"] >= 0.9
    assert results["first"]["accuracy"] >= 0.6
    assert (folder / "samples.md").is_file()
    capsys.readouterr()
    args = ["--stage=t5", f"--run={folder}", "--beam_size=1", "keyword: cat good dog"]
    assert run_command("generate", args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "yes"
    args = ["--stage=t5", f"--run={folder}", "--text", "first: moon cat"]
    assert run_command("generate", args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] in WORDS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("summarize: cat dog", "a task this model was not trained on; it knows 'keyword: ...'"),
        ("first: " + "cat " * 40, "longer than the 24 this model was trained with"),
    ],
)
def test_generate_refuses_unknown_prefixes_and_long_inputs(trained, text, message, capsys):
    folder, _, _ = trained
    assert run_command("generate", ["--stage=t5", f"--run={folder}", text]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_eval_refuses_a_task_the_model_was_not_trained_on(trained, capsys):
    folder, _, _ = trained
    assert run_command("eval", ["--stage=t5", f"--run={folder}", "--tasks=sst2"]) == 2
    assert "--tasks sst2: this model was not trained on it" in capsys.readouterr().err


def test_pretraining_lowers_the_loss_and_finetuning_starts_from_it(tmp_path, runs, capsys):
    rng = random.Random(1)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(rng.choices(WORDS[:6], k=rng.randint(4, 10)))
                              for _ in range(600)))  # fmt: skip
    args = ["--stage=t5", f"--text_file={text}", "--vocab_size=48", "--num_sentinels=8",
            "--chunk_length=16", "--val_rows=20", "--max_steps=60", "--time_limit=0",
            "--eval_interval=20", "--batch_size=16", "--warmup_steps=5", "--lr=3e-3",
            *TINY, "--run_name=pre"]  # fmt: skip
    assert run_command("pretrain", args) == 0
    folder = runs / "t5" / "pre"
    rows = metrics(folder)
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    first = rows[0]["loss"]  # about log(vocabulary): nothing learned yet
    assert val[-1] < val[0] and val[-1] < first - 1.0, (first, val)
    assert (folder / "checkpoints" / "final" / "meta.json").is_file()
    assert (folder / "loss.png").is_file() and (folder / "tokenizer" / "tokenizer.json").is_file()
    # a pretrained model generates gap fillers for a sentinel (any tokens: the test is that
    # a pretrain run takes text without a task prefix)
    assert run_command("generate", ["--stage=t5", f"--run={folder}", "red <extra_id_0> cat"]) == 0

    data = write_tasks(tmp_path, rows=300)
    ft = finetune_args(data, f"--init={folder}", "--max_steps=3", "--eval_interval=3",
                       "--run_name=from_pre")  # fmt: skip
    assert run_command("finetune", ft) == 0
    out = capsys.readouterr().out
    assert f"loaded {folder / 'checkpoints' / 'final'}" in out
    tokenizer = json.loads(
        (runs / "t5" / "from_pre" / "tokenizer" / "t5_tokenizer.json").read_text()
    )
    assert tokenizer == {"num_sentinels": 8}  # the pretrain run's tokenizer, not a new one

    # --init_parts encoder: the encoder and the embedding are the pretrained ones, the decoder
    # is the random one a --init none run would draw
    import torch

    from shared.checkpoint import read_meta
    from shared.config import parse_config
    from t5.finetune import FinetuneConfig, prepare
    from t5.model import T5
    from t5.training import config_from_meta, load_weights

    argv = finetune_args(data, f"--init={folder}", "--max_steps=1")[1:]  # without --stage

    def prepared(*extra: str) -> dict[str, torch.Tensor]:
        cfg = parse_config(FinetuneConfig, [*argv, *extra])
        job = prepare(cfg)
        torch.manual_seed(cfg.seed)  # as shared.trainer seeds before build_model
        return job.build_model().state_dict()

    everything, encoder_only = prepared(), prepared("--init_parts=encoder")
    tokenizer_only = prepared("--init_parts=tokenizer")
    final = folder / "checkpoints" / "final"
    pretrained = T5(config_from_meta(read_meta(final), str(final)))
    load_weights(pretrained, final)
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(everything[name], tensor), name
        decoder = name.startswith("decoder.")
        assert torch.equal(encoder_only[name], tensor) != decoder, name
    torch.manual_seed(parse_config(FinetuneConfig, argv).seed)  # as the trainer seeds them
    random_weights = T5(pretrained.config).state_dict()
    assert all(torch.equal(encoder_only[k], v) for k, v in random_weights.items()
               if k.startswith("decoder."))  # fmt: skip
    # --init_parts tokenizer: the pretrain run's tokenizer with --init none's random weights
    assert all(torch.equal(tokenizer_only[k], v) for k, v in random_weights.items())

    # a checkpoint whose weights do not fit the config it names: one line, no run folder
    bad = runs / "t5" / "bad"
    shutil.copytree(folder, bad)
    meta_path = bad / "checkpoints" / "final" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["t5_config"]["d_ff"] = 64
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    ft = finetune_args(data, f"--init={bad}", "--max_steps=1", "--run_name=from_bad")
    assert run_command("finetune", ft) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit this model" in err[0], err
    assert not (runs / "t5" / "from_bad").exists()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("finetune", ["--tasks=nope"], "nope.train.tsv does not exist"),
        ("finetune", ["--tasks=keyword,first", "--rates=1"], "--rates gives 1 numbers for 2 tasks"),
        ("finetune", ["--tasks=keyword", "--init=/nowhere/at/all"], "--init /nowhere/at/all"),
        ("finetune", ["--tasks=keyword", "--lr=-1"], "--lr"),
        ("finetune", ["--tasks=keyword", "--select_rows=5000"], "leaves no training rows"),
        ("finetune", ["--tasks=keyword", "--num_sentinels=50"], "fewer than 16 pieces"),
        ("pretrain", ["--num_sentinels=0"], "span corruption needs sentinel tokens"),
        ("pretrain", ["--num_sentinels=2", "--chunk_length=64"], "may need 3 sentinels"),
    ],
)
def test_bad_options_fail_with_one_line_and_write_nothing(
    command, args, message, tmp_path, runs, capsys
):
    data = write_tasks(tmp_path, rows=200)
    base = ["--stage=t5", "--max_steps=1", *TINY]
    if command == "finetune":
        base += [
            f"--data_dir={data}",
            "--init=none",
            "--select_rows=50",
            "--vocab_size=64",
            "--num_sentinels=4",
        ]
    else:
        base += [f"--text_file={data / 'first.train.tsv'}"]
    assert run_command(command, [*base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not runs.exists()


def test_an_unknown_registry_task_is_one_line(runs, capsys):
    assert run_command("finetune", ["--stage=t5", "--tasks=nope", "--max_steps=1"]) == 2
    assert "unknown task 'nope'; choose from translate_de_en, sst2" in capsys.readouterr().err
    assert not runs.exists()


def losses(folder: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metrics(folder) if "loss" in r}


def test_resuming_with_another_model_config_is_refused_and_writes_nothing(tmp_path, runs, capsys):
    """(Resuming exactly, after a real Ctrl-C, is tests/test_workspace_resume.py's.)"""
    data = write_tasks(tmp_path, rows=400)
    common = finetune_args(data, "--eval_interval=1000", "--decay=constant", "--warmup_steps=0")
    assert run_command("finetune", [*common, "--max_steps=2", "--run_name=cut"]) == 0
    folder = runs / "t5" / "cut"
    before = sorted(p.name for p in (folder / "checkpoints").iterdir())
    runs_before = sorted(p.name for p in (runs / "t5").iterdir())
    wrong = ["--stage=t5", f"--resume={folder}", "--model.d_model=64", "--max_steps=4"]
    assert run_command("finetune", wrong) == 2
    assert "saved with another model config (d_model 48 -> 64)" in capsys.readouterr().err
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == before
    assert sorted(p.name for p in (runs / "t5").iterdir()) == runs_before  # no new run folder
