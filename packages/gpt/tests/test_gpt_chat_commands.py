"""base run -> make-chat-data -> sft (full and LoRA) -> chat-eval -> chat, on tiny models.

One module-wide base run and fine-tuned runs keep the file quick; each test reads them back.
The chat command is driven twice: through a pipe (one message a line in, one reply a line
out) and through a pseudo-terminal with pexpect, as a person types it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from gpt.chat.data import make_chat_data
from shared.commands import run_command

WORDS = "castle meadow silver forest candle winter garden thunder harbour lantern"
TEXT = ("To be, or not to be, that is the question.\n" + WORDS + "\n") * 30
SFT = ["--max_steps=60", "--eval_interval=30", "--val_rows=40", "--batch_size=16",
       "--max_length=64", "--time_limit=0", "--precision=fp32", "--threads=1"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny):
    """RUNS_DIR with a base run, the data, a fully fine-tuned and a LoRA run."""
    root = tmp_path_factory.mktemp("chat")
    patch = pytest.MonkeyPatch()
    patch.setenv("RUNS_DIR", str(root / "runs"))
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    try:
        train_tiny(text, "base", max_steps=30, extra=("--model.tie_embeddings=false",))
        for split, n in (("train", 600), ("test", 40)):
            out = root / f"{split}.jsonl"
            make_chat_data(["--tasks=add,reverse", f"--n={n}", f"--split={split}", f"--out={out}"],
                           text_source=lambda: TEXT)  # fmt: skip
        data = f"--data={root / 'train.jsonl'}"
        assert run_command("sft", ["--stage=gpt", data, "--init=base", *SFT,
                                   "--run_name=full"]) == 0  # fmt: skip
        assert run_command("sft", ["--stage=gpt", data, "--init=base", *SFT, "--lora.rank=4",
                                   "--lr=5e-3", "--run_name=lora"]) == 0  # fmt: skip
        assert run_command("sft", ["--stage=gpt", data, "--init=base", *SFT, "--optimizer=muon",
                                   "--run_name=muon"]) == 0  # fmt: skip
        # LoRA on a base whose output layer is its embedding (gpt train's default)
        train_tiny(text, "base-tied", max_steps=30, extra=("--model.tie_embeddings=true",))
        assert run_command("sft", ["--stage=gpt", data, "--init=base-tied", *SFT,
                                   "--lora.rank=4", "--lr=5e-3",
                                   "--run_name=lora-tied"]) == 0  # fmt: skip
        yield root
    finally:
        patch.undo()


def val_losses(folder: Path) -> list[float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if "val_loss" in r]


@pytest.mark.parametrize("name", ["full", "lora", "muon", "lora-tied"])
def test_fine_tuning_lowers_the_loss_on_held_out_conversations(runs, name):
    losses = val_losses(runs / "runs" / "gpt" / name)
    assert len(losses) >= 2 and losses[-1] < losses[0] - 0.3, losses


def test_a_lora_run_saves_only_the_adapters_and_the_new_tokens_rows(runs):
    final = runs / "runs" / "gpt" / "lora" / "checkpoints" / "final"
    with safe_open(str(final / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    rows = {"tok_emb.new_rows", "lm_head.new_rows"}  # the base run's output layer is untied
    assert rows <= set(keys)
    assert all(".lora_A" in k or ".lora_B" in k for k in keys if k not in rows)
    tied = runs / "runs" / "gpt" / "lora-tied" / "checkpoints" / "final" / "model.safetensors"
    with safe_open(str(tied), "pt") as f:
        tied_keys = set(f.keys())  # noqa: SIM118 (safe_open is not a dict)
    assert "tok_emb.new_rows" in tied_keys and "lm_head.new_rows" not in tied_keys
    full = runs / "runs" / "gpt" / "full" / "checkpoints" / "final" / "model.safetensors"
    assert (final / "model.safetensors").stat().st_size < 0.5 * full.stat().st_size


@pytest.mark.parametrize("name", ["full", "lora", "base"])
def test_chat_eval_reports_each_task(runs, name, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(runs / "runs"))
    args = ["--stage=gpt", f"--run={name}", f"--data={runs / 'test.jsonl'}", "--threads=1",
            "--max_new_tokens=8"]  # fmt: skip
    assert run_command("chat-eval", args) == 0
    out = capsys.readouterr().out
    result = json.loads((runs / "runs" / "gpt" / name / "chat_eval.json").read_text())
    assert set(result["tasks"]) == {"add", "reverse"}
    assert all(t["n"] == 20 and 0 <= t["accuracy"] <= 1 for t in result["tasks"].values())
    assert "exact match" in out


def chat_command() -> str:
    return str(Path(sys.executable).parent / "chat")


def test_chat_through_a_pipe_answers_one_line_per_message(runs):
    env = {**os.environ, "RUNS_DIR": str(runs / "runs")}
    done = subprocess.run([chat_command(), "--run=full", "--threads=1", "--max_new_tokens=6"],
                          input="What is 123 + 456?\n\nReverse the word \"castle\".\n",
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 2  # two messages (the blank line is skipped)


def test_chat_in_a_terminal_streams_and_obeys_its_commands(runs):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "RUNS_DIR": str(runs / "runs")}
    args = ["--run=full", "--threads=1", "--max_new_tokens=6"]
    piped = subprocess.run([chat_command(), *args], input="What is 123 + 456?\n",
                           capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    expected = piped.stdout.strip()  # greedy: the same reply in both modes
    child = pexpect.spawn(chat_command(), args, env=env, encoding="utf-8", timeout=60)
    try:
        child.expect("/reset, /system TEXT, /exit")
        child.expect("you> ")
        child.sendline("What is 123 + 456?")
        child.expect("bot> ")
        child.expect("you> ")  # the reply streamed, then the next prompt
        assert child.before.split() == expected.split()  # (a pipe prints newlines as spaces)
        child.sendline("/system Be brief.")
        child.expect(r"\(system message set; conversation cleared\)")
        child.expect("you> ")
        child.sendline("/reset")
        child.expect(r"\(conversation cleared\)")
        child.expect("you> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_bad_data_is_one_line_exit_2_and_no_run(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": [{"role": "user", "content": "hi"}, '
                   '{"role": "assistant", "content": "yo"}]}\n{"conversations": 7}\n')  # fmt: skip
    assert (
        run_command(
            "sft", ["--stage=gpt", f"--data={bad}", f"--init={runs / 'runs' / 'gpt' / 'base'}"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.jsonl:2:" in err and "\n" not in err
    assert not (tmp_path / "runs").exists()
    assert run_command("sft", ["--stage=gpt"]) == 2
    assert "--data is required" in capsys.readouterr().err
