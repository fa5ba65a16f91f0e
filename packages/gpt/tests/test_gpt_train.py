"""The commands end to end on tiny models: train, resume exactly, refuse mismatches, sample, eval.

Every test trains on a text it writes itself (a few repeated lines) with a one-layer model, in a
runs folder of its own (RUNS_DIR); only the fallback test reads a dataset, the pystdlib corpus
that every Python carries.
"""

import contextlib
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from gpt.cli import evaluate, sample, train
from gpt.data import TokenData, characters_in_windows, make_tokenizer, sequential_windows
from gpt.model import GPT, lm_loss
from gpt.train import (
    FinalEvalReserve,
    LMTask,
    TrainConfig,
    lr_factor,
    make_optimizer,
    model_config,
    predict_eval_seconds,
)
from gpt.train_run import RENAMED
from shared.config import parse_config
from shared.errors import CheckpointError, ConfigError
from shared.fit import FitState
from shared.trainer import Resume, resumed_config

TEXT = "To be, or not to be, that is the question.\nWhether 'tis nobler in the mind to suffer\n"
TINY = [
    "--tokenizer=char",  # written for one id per character (BPE: its own test)
    "--model.n_layer=1",
    "--model.n_head=2",
    "--model.n_embd=32",
    "--model.block_size=16",
    "--batch-size=8",
    "--time-limit=0",
    "--eval-iters=2",
    "--sample-length=20",
    "--precision=fp32",
    "--device=cpu",
]


@pytest.fixture
def text_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    path = tmp_path / "text.txt"
    path.write_text(TEXT * 40, encoding="utf-8")
    return path


def metrics(tmp_path, name):
    path = tmp_path / "runs" / "gpt" / name / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def losses(rows):
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.parametrize(
    "optimizer", [["--optimizer=muon", "--muon-lr=0.05"], ["--optimizer=adamw"]], ids=str
)
def test_gpt_train_drives_the_loss_down(text_file, tmp_path, capsys, optimizer):
    common = [*TINY, f"--text-file={text_file}", "--max-steps=60", "--lr=1e-2"]
    train([*common, *optimizer, "--run-name=a"])
    out = capsys.readouterr().out
    rows = metrics(tmp_path, "a")
    first = rows[0]["loss"]
    final = [r["final_val_loss"] for r in rows if "final_val_loss" in r][0]
    assert first > 3.0  # about ln(vocabulary) at the start
    assert final < 1.0  # the two lines are learned
    assert "parameters" in out and "--- sample" in out
    folder = tmp_path / "runs" / "gpt" / "a"
    for name in ("config.json", "loss.png", "tokenizer/tokenizer.json"):
        assert (folder / name).is_file(), name
    assert (folder / "checkpoints" / "final" / "model.safetensors").is_file()


def test_gpt_train_compiled_gives_the_same_losses(text_file, tmp_path, monkeypatch):
    """`--compile` trains through the compiled wrapper. Dynamo traces the model for real, but
    with the "eager" backend (no code generation, seconds instead of a minute), so the losses
    must equal the uncompiled run's."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend="eager"))
    common = [*TINY, f"--text-file={text_file}", "--max-steps=4", "--sample-length=0"]
    train([*common, "--run-name=plain"])
    train([*common, "--compile", "--run-name=compiled"])
    plain, compiled = losses(metrics(tmp_path, "plain")), losses(metrics(tmp_path, "compiled"))
    assert len(plain) == 4
    assert compiled == pytest.approx(plain, abs=1e-6)


def test_gpt_train_resume_continues_exactly(text_file, tmp_path):
    """Stop at step 6 of 12 and resume: steps 7..12 have the losses of the uninterrupted run.
    Dropout is on, so the global RNG state must come back too, not just the batch sampler's."""
    common = [*TINY, f"--text-file={text_file}", "--max-steps=12", "--model.dropout=0.1"]
    train([*common, "--checkpoint-interval=6", "--eval-interval=4", "--run-name=full"])
    checkpoint = tmp_path / "runs" / "gpt" / "full" / "checkpoints" / "step_000006"
    train([*common, f"--resume={checkpoint}", "--eval-interval=4", "--run-name=resumed"])
    full, resumed = losses(metrics(tmp_path, "full")), losses(metrics(tmp_path, "resumed"))
    assert sorted(resumed) == list(range(1, 13))  # the first half is carried over
    assert [resumed[s] for s in range(7, 13)] == [full[s] for s in range(7, 13)]


def test_gpt_train_resume_takes_the_runs_own_config(text_file, tmp_path):
    """`--resume RUN` alone rebuilds the run's model options from its checkpoint."""
    train([*TINY, f"--text-file={text_file}", "--max-steps=4", "--run-name=base"])
    train([f"--resume={tmp_path / 'runs' / 'gpt' / 'base'}", "--max-steps=6", "--run-name=more"])
    assert max(losses(metrics(tmp_path, "more"))) == 6


def test_gpt_train_refuses_a_checkpoint_from_another_config(text_file, tmp_path):
    train([*TINY, f"--text-file={text_file}", "--max-steps=2", "--run-name=a"])
    run = str(tmp_path / "runs" / "gpt" / "a")
    with pytest.raises(CheckpointError, match="n_embd=32 .asked: 64"):
        train([*TINY, f"--resume={run}", "--max-steps=4", "--model.n_embd=64"])
    with pytest.raises(CheckpointError, match="char tokenizer, not --tokenizer=bpe"):
        train([*TINY, f"--resume={run}", "--max-steps=4", "--tokenizer=bpe"])
    # a tokenizer swapped under a run: sample refuses it (its hash no longer matches)
    from tokenizers_fromscratch import CharTokenizer

    CharTokenizer.train([TEXT + "XYZ"]).save(tmp_path / "runs" / "gpt" / "a" / "tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer"):
        sample([f"--run={run}"])


def test_gpt_sample_and_eval_commands(text_file, tmp_path, capsys):
    train([*TINY, f"--text-file={text_file}", "--max-steps=40", "--lr=1e-2", "--run-name=a"])
    capsys.readouterr()
    sample(["--prompt=To be", "--max-new-tokens=30", "--temperature=0"])  # the latest run
    greedy = capsys.readouterr().out
    assert greedy.startswith("To be") and len(greedy) > 30
    sample(["--run=a", "--prompt=To", "--max-new-tokens=200", "--stop=e,q", "--seed=3"])
    stopped = capsys.readouterr().out.rstrip("\n")
    assert stopped.startswith("To") and stopped[-1] in "eq" and len(stopped) < 200
    assert "e" not in stopped[2:-1] and "q" not in stopped[2:-1]
    sample(["--run=a", "--num-samples=2", "--max-new-tokens=10", "--top-k=5", "--top-p=0.9"])
    assert capsys.readouterr().out.count("--- sample") == 2
    evaluate(["--run=a", "--precision=fp32"])
    out = capsys.readouterr().out
    assert "perplexity" in out
    evaluate(["--run=a", f"--text-file={text_file}"])
    assert "perplexity" in capsys.readouterr().out


def test_gpt_sample_cache_and_no_cache_print_the_same_text(text_file, capsys):
    train([*TINY, f"--text-file={text_file}", "--max-steps=10", "--run-name=a"])
    capsys.readouterr()
    sample(["--prompt=To", "--max-new-tokens=12", "--temperature=0"])
    cached = capsys.readouterr().out
    sample(["--prompt=To", "--max-new-tokens=12", "--temperature=0", "--no-cache"])
    assert capsys.readouterr().out == cached


@pytest.mark.parametrize(
    "option, message",
    [
        ("--top-p=1.5", "--top_p must lie in (0, 1], got 1.5"),  # accepted silently before
        ("--top-p=0", "--top_p must lie in (0, 1], got 0.0"),
        ("--temperature=-1", "--temperature must be at least 0, got -1.0"),
        ("--top-k=0", "--top_k must be at least 1, got 0"),
        ("--max-new-tokens=-5", "--max_new_tokens must be at least 0, got -5"),
        ("--num-samples=0", "--num_samples must be at least 1, got 0"),
        ("--repetition-penalty=0", "--repetition_penalty must be positive, got 0.0"),
    ],
)
def test_gpt_sample_refuses_options_out_of_range(tmp_path, monkeypatch, capsys, option, message):
    """Refused in one line with exit code 2 by the dispatcher, before any run is looked up."""
    from shared.commands import report_errors

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    assert report_errors(lambda: sample([option])) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize(
    "option, message",
    [
        ("--model.n_head=0", "--model.n_head must be at least 1, got 0"),  # a ZeroDivisionError
        ("--model.n_layer=0", "--model.n_layer must be at least 1, got 0"),
        ("--model.dropout=1", "--model.dropout must lie in [0, 1), got 1.0"),
    ],
)
def test_gpt_train_refuses_model_options_out_of_range(tmp_path, monkeypatch, capsys, option,
                                                      message):  # fmt: skip
    from shared.commands import report_errors

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    assert report_errors(lambda: train([option, "--max_steps=1"])) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "runs").exists()


def test_gpt_train_falls_back_to_pystdlib_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DATASETS_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    train([*TINY, "--max-steps=2", "--sample-length=0", "--eval-interval=100"])
    out = capsys.readouterr().out
    assert "tinyshakespeare is unavailable, so this run trains on pystdlib instead" in out
    assert "pystdlib:" in out


def test_gpt_train_config_errors_name_the_option():
    with pytest.raises(ConfigError, match="--time_limit or --max_steps"):
        parse_config(TrainConfig, ["--max-steps=0", "--time-limit=0"], prog="gpt train")
    with pytest.raises(ConfigError, match="n_embd 128 is not divisible by n_head 3"):
        parse_config(TrainConfig, ["--model.n_head=3"], prog="gpt train")
    with pytest.raises(ConfigError, match="did you mean --max.steps"):
        parse_config(TrainConfig, ["--max-step=3"], prog="gpt train")


def test_gpt_train_muon_takes_the_block_matrices_and_adamw_the_rest():
    cfg = parse_config(TrainConfig, ["--model.n_layer=2"], prog="gpt train")
    model = GPT(model_config(cfg, 65))
    optimizer = make_optimizer(model, cfg)
    in_muon = {id(p) for g in optimizer.muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in optimizer.adamw.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        expected = name.startswith("blocks.") and p.dim() == 2  # q, k, v, o, gate, up, down
        assert (id(p) in in_muon) == expected, name
        assert (id(p) in in_adamw) != expected, name
    assert len(in_muon) == 2 * 7
    assert {g["peak_lr"] for g in optimizer.param_groups} == {cfg.lr, cfg.muon_lr}


def test_gpt_train_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(max_steps=100, time_limit=0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(cfg, 0, 0.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 9, 0.0) == pytest.approx(1.0)
    assert lr_factor(cfg, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(cfg, 100, 0.0) == pytest.approx(0.1)
    timed = TrainConfig(max_steps=0, time_limit=10.0, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_factor(timed, 5, 5.0) == pytest.approx(0.5)  # half the time: half the decay


def test_gpt_train_checkpoint_holds_no_pickles(text_file, tmp_path):
    train([*TINY, f"--text-file={text_file}", "--max-steps=2", "--run-name=a"])
    final = tmp_path / "runs" / "gpt" / "a" / "checkpoints" / "final"
    assert sorted(p.name for p in final.iterdir()) == [
        "meta.json",
        "model.safetensors",
        "optimizer.safetensors",
    ]
    meta = json.loads((final / "meta.json").read_text())
    assert meta["tokenizer"]["kind"] == "char" and meta["model"]["n_embd"] == 32
    assert torch.tensor(meta["fit"]["generator"], dtype=torch.uint8).numel() > 0  # the batches' RNG


# ----------------------------------------------------------------------------------------------
# The final evaluation: capped, spread over the split, and paid for out of the time limit


def test_gpt_capped_evaluation_reads_windows_spread_over_the_split():
    ids = torch.arange(1001)  # 62 windows of 16 (+ 1 target)
    every = [x for x, _ in sequential_windows(ids, 16, 8)]
    assert sum(len(x) for x in every) == 62
    capped = torch.cat([x for x, _ in sequential_windows(ids, 16, 8, max_windows=5)])  # (5, 16)
    starts = capped[:, 0].tolist()
    assert starts[0] == 0 and starts[-1] == 61 * 16  # the first and the last window
    assert len(set(starts)) == 5 and sorted(starts) == starts
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert max(gaps) - min(gaps) <= 16  # evenly spread (up to rounding to a window)


def test_gpt_capped_evaluation_is_the_mean_over_those_windows():
    cfg = TrainConfig()
    model_cfg = model_config(cfg, 11)
    model_cfg.block_size, model_cfg.n_layer = 16, 1
    torch.manual_seed(0)
    model = GPT(model_cfg)
    ids = torch.randint(0, 11, (2001,))
    task = LMTask(TokenData(ids, ids), model_cfg, batch_size=4)
    assert task.eval_windows(ids) == 125 and task.eval_windows(ids, max_tokens=160) == 10
    capped = task.evaluate_text(model, ids, contextlib.nullcontext, max_tokens=160)
    x, y = torch.cat([x for x, _ in sequential_windows(ids, 16, 64, 10)]), None
    y = torch.cat([y for _, y in sequential_windows(ids, 16, 64, 10)])
    with torch.no_grad():
        expected = lm_loss(model.eval()(x), y).item()
    assert capped == pytest.approx(expected, rel=1e-5)
    assert task.evaluate_text(model, ids, contextlib.nullcontext) != pytest.approx(capped, rel=1e-6)


def test_gpt_final_evaluation_time_is_predicted_from_what_was_measured():
    assert predict_eval_seconds(1000, None, None) == 0.0  # nothing measured yet
    assert predict_eval_seconds(1000, None, 3e-3) == pytest.approx(1.0)  # a third of training
    assert predict_eval_seconds(1000, 2e-3, 3e-3) == pytest.approx(2.0)  # measured wins


def test_gpt_final_evaluation_reserve_leaves_out_the_compiling_first_step():
    """With --compile the first step holds tens of seconds of compiling: the training speed that
    predicts the final evaluation, before a scheduled evaluation has measured its own, counts
    only the steps after it. Here 3000 tokens at a third of 2 s / 200 tokens: 10 s, where the
    first step's 60 s would have made it 200 s."""
    task = SimpleNamespace(eval_seconds_per_token=None)
    reserve = FinalEvalReserve(task, final_tokens=3000, tokens_per_step=100)
    assert reserve(FitState(step=10, elapsed=5.0)) == 0.0  # resumed at step 10: nothing measured
    assert reserve(FitState(step=11, elapsed=65.0)) == 0.0  # only the compiling step so far
    assert reserve(FitState(step=13, elapsed=67.0)) == pytest.approx(10.0)
    task.eval_seconds_per_token = 1e-3  # a scheduled evaluation measured its speed: it wins
    assert reserve(FitState(step=14, elapsed=68.0)) == pytest.approx(3.0)


def test_gpt_train_evaluates_with_the_configs_eval_iters(text_file, monkeypatch):
    """--eval_iters reaches the scheduled evaluation: 1 batch per split, at every step."""
    asked = []
    estimate = LMTask.estimate

    def spy(self, model, iters, seed, precision_ctx):
        asked.append(iters)
        return estimate(self, model, iters, seed, precision_ctx)

    monkeypatch.setattr(LMTask, "estimate", spy)
    train([*TINY, f"--text-file={text_file}", "--max-steps=2", "--eval-interval=1",
           "--eval-iters=1", "--sample-length=0", "--run-name=eval-iters"])  # fmt: skip
    assert asked == [1, 1]  # one scheduled evaluation per step, each on 1 batch per split


def test_gpt_train_time_limit_leaves_room_for_the_final_evaluation():
    """Training's share of the limit is what the evaluation leaves; the schedule ends there."""
    cfg = TrainConfig(time_limit=10.0, max_steps=0, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_factor(cfg, 5, 4.0, seconds=8.0) == pytest.approx(0.5)  # half of 8 s, not of 10
    assert lr_factor(cfg, 5, 4.0, seconds=0.0) == pytest.approx(0.0)  # all spent on evaluation


def test_gpt_train_says_how_much_of_the_split_it_evaluated(text_file, tmp_path, capsys):
    text = text_file.read_text(encoding="utf-8")
    val = len(text) - int(len(text) * 0.9)  # characters: one token each
    common = [*TINY, f"--text-file={text_file}", "--max-steps=2", "--sample-length=0"]
    train([*common, "--final-eval-tokens=64", "--run-name=capped"])
    assert f"over 64 of the {val} validation tokens" in capsys.readouterr().out
    train([*common, "--final-eval-tokens=0", "--run-name=all"])
    every = (val - 1) // 16 * 16  # whole windows of the block size
    assert f"over all {every} validation tokens" in capsys.readouterr().out


def test_gpt_resume_takes_a_new_lr_and_an_old_runs_renamed_options(text_file, tmp_path):
    """The optimizer's saved settings do not override this command's; a run saved before
    --max-iters became --max-steps resumes with its step cap."""
    common = [*TINY, f"--text-file={text_file}", "--decay=constant", "--warmup-steps=0"]
    train([*common, "--max-steps=3", "--lr=1e-2", "--optimizer=adamw", "--run-name=a"])
    folder = tmp_path / "runs" / "gpt" / "a"
    train([f"--resume={folder}", "--max-steps=5", "--lr=2e-3", "--run-name=b"])
    lrs = {r["step"]: r["lr"] for r in metrics(tmp_path, "b") if "lr" in r}
    assert lrs[3] == pytest.approx(1e-2) and lrs[5] == pytest.approx(2e-3)

    meta_path = folder / "checkpoints" / "final" / "meta.json"  # as an older gpt wrote it
    meta = json.loads(meta_path.read_text())
    config = meta["config"]
    config["max_iters"], config["warmup_iters"] = (
        config.pop("max_steps"),
        config.pop("warmup_steps"),
    )
    meta_path.write_text(json.dumps(meta))
    resume = Resume(folder / "checkpoints" / "final", meta)
    cfg = resumed_config(TrainConfig, [f"--resume={folder}"], "gpt train", resume, RENAMED)
    assert (cfg.max_steps, cfg.warmup_steps) == (3, 0)


def test_gpt_runs_saved_by_gpt_1_2_still_load_and_resume_exactly(text_file, tmp_path, capsys):
    """A checkpoint as gpt 1.2 wrote it (the attention kernel in the model config, no variant,
    the batch generator as `data_generator`, no `fit`) samples, evaluates and resumes."""
    common = [*TINY, f"--text-file={text_file}", "--decay=constant", "--warmup-steps=0",
              "--optimizer=adamw", "--model.dropout=0.1", "--sample-length=0"]  # fmt: skip
    train([*common, "--max-steps=3", "--run-name=old"])
    train([*common, "--max-steps=5", "--run-name=straight"])
    folder = tmp_path / "runs" / "gpt" / "old"
    meta_path = folder / "checkpoints" / "final" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["data_generator"] = meta.pop("fit")["generator"]
    del meta["metrics"], meta["model"]["variant"], meta["config"]["model"]["variant"]
    meta["model"]["fused_attention"] = True
    meta["config"]["model"]["attention"] = "auto"
    meta_path.write_text(json.dumps(meta))
    for name in ("step_000003", "interrupted"):  # only the old final checkpoint is left
        shutil.rmtree(folder / "checkpoints" / name, ignore_errors=True)

    sample([f"--run={folder}", "--max-new-tokens=5"])
    evaluate([f"--run={folder}"])
    assert "nats/char" in capsys.readouterr().out
    train([f"--resume={folder}", "--max-steps=5", "--run-name=resumed"])
    resumed, straight = losses(metrics(tmp_path, "resumed")), losses(metrics(tmp_path, "straight"))
    assert sorted(resumed) == [1, 2, 3, 4, 5] and resumed == straight


def test_gpt_characters_in_windows_count_the_targets_text():
    """The per-character loss divides by the characters the evaluated targets spell: for BPE
    (about two characters a token here) exactly the text between the windows' first target and
    their last, for the char tokenizer one per token."""
    text = TEXT * 40
    bpe = make_tokenizer("bpe", text, vocab_size=300)
    ids = torch.tensor(bpe.encode(text))
    n = (len(ids) - 1) // 16  # every window of 16
    expected = len(bpe.decode(ids[1 : n * 16 + 1].tolist()))
    assert characters_in_windows(ids, 16, bpe) == expected
    assert expected > 1.5 * n * 16  # merges made: more characters than tokens
    spread = characters_in_windows(ids, 16, bpe, max_windows=5)
    assert 5 * 16 < spread < expected / 2
    char = make_tokenizer("char", text)
    char_ids = torch.tensor(char.encode(text))
    assert characters_in_windows(char_ids, 16, char, max_windows=7) == 7 * 16


def test_gpt_train_with_bpe_reports_the_loss_per_character(text_file, tmp_path, capsys):
    args = [*TINY, f"--text-file={text_file}", "--max-steps=3", "--sample-length=0"]
    train([*args, "--tokenizer=bpe", "--bpe-vocab-size=300", "--run-name=b"])
    out = capsys.readouterr().out
    final = [r for r in metrics(tmp_path, "b") if "final_val_loss" in r][0]
    per_char = final["final_val_per_char"]
    assert final["final_val_loss"] / 4 < per_char < final["final_val_loss"] / 1.5
    assert f"val loss {per_char:.4f} nats/char" in out and "nats/token" in out
