"""base -> sft -> make-pref-data -> dpo (full and LoRA) and rl -> chat-eval, on tiny models.

One module-wide set of runs keeps the file quick; each test reads them back. The checks:
DPO learns the held-out pairs' preference, GRPO's first step sees no KL (the policy is the
reference), the runs are ordinary runs every reader takes, and bad input stops with one line.
"""

import json
import math
from pathlib import Path

import pytest
import torch

import gpt.post.pref_data
import gpt.post.rl
from gpt.chat.data import make_chat_data
from gpt.post.pairs import read_pairs
from gpt.runs import load_run_model
from shared.commands import run_command

WORDS = "castle meadow silver forest candle winter garden thunder harbour lantern"
TEXT = ("To be, or not to be, that is the question.\n" + WORDS + "\n") * 30
CPU = ["--stage=gpt", "--time_limit=0", "--precision=fp32", "--threads=1", "--max_length=64"]
SFT = ["--max_steps=60", "--eval_interval=30", "--val_rows=40", "--batch_size=16"]
DPO = ["--max_steps=30", "--eval_interval=15", "--warmup_steps=2", "--val_rows=40",
       "--batch_size=16", "--lr=2e-3", "--max_new_tokens=8", "--eval_limit=20"]  # fmt: skip
RL = ["--tasks=add,reverse", "--max_steps=6", "--eval_interval=3", "--prompts_per_step=2",
      "--group_size=4", "--max_new_tokens=8", "--prompts=50", "--eval_limit=10"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny):
    """RUNS_DIR with a base run, an SFT run, pairs, DPO runs (full, LoRA) and an RL run."""
    root = tmp_path_factory.mktemp("post")
    patch = pytest.MonkeyPatch()
    patch.setenv("RUNS_DIR", str(root / "runs"))
    for module in (gpt.post.rl, gpt.post.pref_data):  # the words of TEXT, not Shakespeare's
        patch.setattr(module, "shakespeare", lambda: TEXT)
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    try:
        train_tiny(text, "base", max_steps=30, extra=("--model.tie_embeddings=false",))
        for split, n in (("train", 600), ("select", 20)):
            make_chat_data(["--tasks=add,reverse", f"--n={n}", f"--split={split}",
                            f"--out={root / split}.jsonl"], text_source=lambda: TEXT)  # fmt: skip
        assert run_command("sft", [*CPU, f"--data={root / 'train.jsonl'}", "--init=base", *SFT,
                                   "--run_name=sft"]) == 0  # fmt: skip
        pairs = root / "pairs.jsonl"
        assert run_command("make-pref-data", ["--stage=gpt", "--init=sft", "--tasks=add,reverse",
                                              "--n=300", f"--out={pairs}", "--threads=1",
                                              "--max_new_tokens=8"]) == 0  # fmt: skip
        select = f"--eval_data={root / 'select.jsonl'}"
        for name, extra in (
            ("dpo", []),
            ("dpo-lora", ["--lora.rank=4", "--lr=5e-3", "--nll_weight=0"]),
        ):
            assert run_command("dpo", [*CPU, f"--data={pairs}", "--init=sft", *DPO, select,
                                       *extra, f"--run_name={name}"]) == 0  # fmt: skip
        assert run_command("rl", [*CPU, "--init=sft", *RL, select, "--run_name=rl"]) == 0
        yield root
    finally:
        patch.undo()


def metric(folder: Path, key: str) -> list[float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


def test_make_pref_data_pairs_a_right_reply_with_a_wrong_one(runs):
    pairs = read_pairs(runs / "pairs.jsonl")
    assert len(pairs) == 300
    for pair in pairs:
        question = pair.prompt[-1].content
        if pair.task == "add":
            a, b = (int(n) for n in __import__("re").findall(r"\d+", question))
            assert pair.chosen == str(a + b)
        assert pair.rejected != pair.chosen


@pytest.mark.parametrize("name", ["dpo", "dpo-lora"])
def test_dpo_learns_the_held_out_preferences(runs, name):
    losses = metric(runs / "runs" / "gpt" / name, "val_loss")
    accuracy = metric(runs / "runs" / "gpt" / name, "val_reward_accuracy")
    assert losses[-1] < math.log(2) - 0.02, losses  # log 2: the policy is the reference
    assert accuracy[-1] >= 0.7, accuracy
    assert metric(runs / "runs" / "gpt" / name, "pass1")  # pass@1 on --eval_data


def test_grpo_starts_at_the_reference_and_logs_its_curves(runs):
    folder = runs / "runs" / "gpt" / "rl"
    assert metric(folder, "kl")[0] == 0.0  # the policy is the reference at the first step
    assert all(0 <= r <= 1 for r in metric(folder, "reward"))
    assert len(metric(folder, "pass1")) >= 2
    assert all((folder / f).is_file() for f in ("reward.png", "pass1.png", "kl.png"))


@pytest.mark.parametrize("name", ["dpo", "dpo-lora", "rl"])
def test_post_trained_runs_are_ordinary_runs(runs, name, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    model, tok, meta, _ = load_run_model(name, torch.device("cpu"))
    sft, _, _, _ = load_run_model("sft", torch.device("cpu"))
    assert tok.vocab_size == sft.config.vocab_size == model.config.vocab_size
    theirs = sft.state_dict()
    ours = {k.replace(".base.", "."): v for k, v in model.state_dict().items()}  # LoRA: merged
    moved = any(not torch.equal(ours[k], theirs[k]) for k in theirs)
    if name == "rl" and max(metric(runs / "runs" / "gpt" / "rl", "reward")) == 0:
        assert not moved  # every reply wrong: no advantage, no KL yet, so no update at all
    else:
        assert moved  # trained: not the SFT run's weights
    args = ["--stage=gpt", f"--run={name}", f"--data={runs / 'select.jsonl'}", "--threads=1",
            "--max_new_tokens=8", "--samples=4"]  # fmt: skip
    assert run_command("chat-eval", args) == 0
    result = json.loads((runs / "runs" / "gpt" / name / "chat_eval.json").read_text())
    assert set(result["tasks"]) == {"add", "reverse"} and result["samples"] == 4
    assert all("pass@4" in t for t in result["tasks"].values())


def test_a_lora_dpo_run_saves_only_its_adapters(runs):
    lora = runs / "runs" / "gpt" / "dpo-lora" / "checkpoints" / "final" / "model.safetensors"
    full = runs / "runs" / "gpt" / "dpo" / "checkpoints" / "final" / "model.safetensors"
    assert lora.stat().st_size < 0.5 * full.stat().st_size


BAD_PAIRS = [
    ('{"prompt": [{"role": "user", "content": "hi"}], "chosen": "a"}', "'rejected' must be"),
    ('{"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "a"}',
     "the same reply"),
    ('{"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"}',
     "ends with an assistant message"),
    ('{"prompt": [], "chosen": "a", "rejected": "b"}', 'expected {"prompt"'),
]  # fmt: skip


@pytest.mark.parametrize("line,message", BAD_PAIRS)
def test_bad_pairs_are_one_line_exit_2_and_no_run(runs, tmp_path, monkeypatch, capsys, line,
                                                   message):  # fmt: skip
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    good = (runs / "pairs.jsonl").read_text().splitlines()[0]
    data = tmp_path / "bad.jsonl"
    data.write_text(f"{good}\n{line}\n")
    args = [*CPU, f"--data={data}", "--init=sft", "--max_steps=5", "--run_name=bad"]
    assert run_command("dpo", args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{data}:2:" in err[0] and message in err[0], err
    assert not (runs / "runs" / "gpt" / "bad").exists()


RUN = ["--max_steps=5", "--run_name=bad"]


@pytest.mark.parametrize("command,args,message", [
    ("rl", ["--init=base", *RUN], "not a chat run"),
    ("dpo", ["--init=sft", *RUN], "--data is required"),
    ("rl", ["--init=sft", "--tasks=divide", *RUN], "choose among"),
    ("make-pref-data", ["--init=sft", "--tasks=style"], "choose among"),
])  # fmt: skip
def test_misuse_is_one_line_exit_2(runs, monkeypatch, capsys, command, args, message):
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    assert run_command(command, ["--stage=gpt", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (runs / "runs" / "gpt" / "bad").exists()


def test_serve_and_export_take_post_trained_runs(runs, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from gpt.serve.server import Served, create_app

    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    out = runs / "dpo-lora.onnx"
    args = ["--stage=gpt", "--run=dpo-lora", "--format=onnx", f"--out={out}"]
    assert run_command("export", args) == 0 and out.is_file()
    assert "20 greedy tokens identical" in capsys.readouterr().out
    model, tok, _, _ = load_run_model("rl", torch.device("cpu"))
    question = {"role": "user", "content": "What is 123 + 456?"}
    with TestClient(create_app(Served(model, tok, "rl"))) as client:
        reply = client.post("/v1/chat/completions", json={"model": "rl", "messages": [question],
                                                          "max_tokens": 4})  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["role"] == "assistant"
