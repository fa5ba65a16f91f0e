"""Every stage's training command survives a real Ctrl-C and resumes exactly.

For each command in `COMMANDS`, on a tiny config: (1) a run straight to N steps; (2) the same
command as a real process, sent SIGINT once it has logged a few steps: it must finish the step,
save checkpoints/interrupted, print `resume with: ...` and exit 130; (3) the printed command,
run with the same step cap. The resumed run's metrics.jsonl starts with the interrupted run's
lines, and every step after the interruption has exactly (==) the straight run's loss: the
weights, the optimizer, the data position, the schedule and every random generator came back.

The interrupted run is the console script (`train`, `pretrain`, `finetune`, `sft`, `dpo`,
`rl`) started as a process while the straight run goes on in this one
(`shared.commands.run_command`, as the resume does). One thread everywhere, so the sums run
in the same order in every process. SIGTERM takes the same path with exit code 143 (the last
test). This file replaces each stage's own copy of the harness;
shared/tests/test_shared_training.py tests StopSignals itself.
"""

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.commands import run_command
from shared.paths import repo_root
from shared.testing import dataset_or_skip

BIN = Path(sys.executable).parent  # the workspace's console scripts: train, pretrain, ...
WORDS = ["the", "film", "plot", "was", "very", "quite", "dull", "great", "music", "cast"]
CPU = ["--precision=fp32", "--device=cpu", "--threads=1", "--time_limit=0"]


@dataclass(frozen=True)
class Command:
    """One stage's training command on a tiny config."""

    command: str  # the console script: train, pretrain or finetune
    stage: str  # its --stage
    args: Callable[[Path], list[str]]  # writes its data under the folder; the options, less
    # the step cap and the run name
    steps: int  # N: the step cap of every run
    signal_after: int = 4  # SIGINT once this many steps are logged
    folder: str = ""  # runs/<folder>/<run>/, where it is not the stage's name
    loss_key: str = "loss"  # the per-step loss in metrics.jsonl
    needs: str | None = None  # a registry dataset the command reads

    def runs(self, root: Path) -> Path:
        return root / (self.folder or self.stage)


# ----------------------------------------------------------------------------------------------
# Tiny data


def text_file(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 80, encoding="utf-8")
    return path


def sentiment(folder: Path) -> list[str]:
    """A classification toy: is "great" among the words? (a csv source: train and validation)"""
    data = folder / "sentiment"
    data.mkdir()
    for name, n, seed in (("train", 200, 0), ("validation", 40, 1)):
        rng = random.Random(seed)
        rows = ["sentence,label"]
        for _ in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
            rows.append(f"{' '.join(words)},{int('great' in words)}")
        (data / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [f"--dataset=csv:{data}"]


def pairs(folder: Path, copy: bool) -> list[str]:
    """A translation toy: copy the words (transformer, tsv files), or a word-for-word lexicon
    (attention, a jsonl source)."""
    lexicon = {"Ein": "A", "Mann": "man", "Hund": "dog", "sieht": "sees", "Ball": "ball"}
    nouns = ["Mann", "Hund", "Ball"]
    for split, n, seed in (("train", 120, 0), ("val", 8, 1), ("test", 8, 2)):
        rng, lines = random.Random(seed), []
        for i in range(n):
            if copy:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
                lines.append(f"{words}\t{words}")
            else:
                de = ["Ein", nouns[i % 3], "sieht", nouns[(i // 3) % 3]]
                lines.append(" ".join(de) + "\t" + " ".join(lexicon[w] for w in de))
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if copy:
        return [f"--{s}_file={folder / f'{s}.tsv'}" for s in ("train", "val", "test")]
    source = folder / "pairs"  # the lexicon as a jsonl source: train, validation, test
    source.mkdir()
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        rows = [line.split("\t") for line in (folder / f"{split}.tsv").read_text().splitlines()]
        lines = [json.dumps({"de": de, "en": en}) for de, en in rows]
        (source / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"--dataset=jsonl:{source}"]


def t5_tasks(folder: Path) -> list[str]:
    """Two text-to-text toys: is "good" among the words? which word comes first?"""
    rng = random.Random(0)
    for split, n in (("train", 400), ("test", 40)):
        keyword, first = [], []
        for _ in range(n):
            words = rng.choices(WORDS, k=rng.randint(2, 6))
            label = rng.random() < 0.5
            if label:
                words.insert(rng.randrange(len(words) + 1), "good")
            keyword.append(f"keyword: {' '.join(words)}\t{'yes' if label else 'no'}")
            first.append(f"first: {' '.join(words)}\t{words[0]}")
        (folder / f"keyword.{split}.tsv").write_text("\n".join(keyword) + "\n")
        (folder / f"first.{split}.tsv").write_text("\n".join(first) + "\n")
    return [f"--data_dir={folder}", "--tasks=keyword,first", "--init=none"]


def t5_text(folder: Path) -> Path:
    rng = random.Random(2)
    path = folder / "t5.txt"
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 10)))
                              for _ in range(300)))  # fmt: skip
    return path


def bert_texts(folder: Path) -> Path:
    """Sentences as a jsonl source, {"text": ...} a line."""
    rng = random.Random(3)
    path = folder / "texts.jsonl"
    lines = (json.dumps({"text": " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))})
             for _ in range(400))  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sft_base(folder: Path) -> list[str]:
    """A tiny gpt base run (runs/gpt/sft-base) and conversations to fine-tune it on."""
    base = ["--stage=gpt", *GPT, f"--text_file={text_file(folder)}", "--sample_length=0", *CPU,
            "--max_steps=10", "--run_name=sft-base"]  # fmt: skip
    assert run_command("train", base) == 0
    data = folder / "chat.jsonl"
    make = ["--stage=gpt", "--tasks=add", "--n=200", "--split=train", f"--out={data}"]
    assert run_command("make-chat-data", make) == 0
    return [f"--data={data}", "--init=sft-base", "--val_rows=20", "--batch_size=8",
            "--max_length=32", "--eval_interval=1000", "--warmup_steps=3"]  # fmt: skip


def post_base(folder: Path) -> Path:
    """A tiny chat run (runs/gpt/post-sft: sft-base fine-tuned) and preference pairs from its
    own replies; additions only, so no dataset is read. Returns the pairs file."""
    sft = sft_base(folder)
    assert run_command("sft", ["--stage=gpt", *sft, *CPU, "--max_steps=10",
                               "--run_name=post-sft"]) == 0  # fmt: skip
    pairs = folder / "pairs.jsonl"
    make = ["--stage=gpt", "--init=post-sft", "--tasks=add", "--n=100", "--max_new_tokens=6",
            "--threads=1", f"--out={pairs}"]  # fmt: skip
    assert run_command("make-pref-data", make) == 0
    return pairs


def rl_options(folder: Path) -> list[str]:
    post_base(folder)  # the chat run to start from
    return ["--init=post-sft", "--tasks=add", "--prompts=50", "--prompts_per_step=2",
            "--group_size=4", "--max_new_tokens=6", "--format_reward=1", "--lr=3e-3",
            "--max_length=32", "--eval_interval=1000", "--warmup_steps=3"]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The commands. Dropout is on wherever the stage has it, so its generator must resume too.

GPT = ["--tokenizer=char", "--model.n_layer=1", "--model.n_head=2", "--model.n_embd=32",
       "--model.block_size=16", "--model.dropout=0.1", "--batch_size=8", "--eval_interval=1000",
       "--eval_iters=1", "--warmup_steps=3"]  # fmt: skip
TRANSFORMER = ["--batch_size=16", "--lr=3e-3", "--warmup=2", "--epochs=1000", "--accumulate=2",
               "--model.d_model=16", "--model.nhead=2", "--model.dim_feedforward=32",
               "--model.dropout=0.1"]  # fmt: skip
BERT = ["hidden_size=32", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=64"]
BERT_RUN = ["--dropout=0.1", "--batch_size=8", "--warmup_steps=3", "--eval_interval=1000"]
T5 = ["--model.d_model=32", "--model.d_kv=8", "--model.num_heads=4", "--model.d_ff=64",
      "--model.num_layers=1", "--model.num_decoder_layers=1", "--model.dropout=0.1",
      "--vocab_size=48", "--num_sentinels=4", "--batch_size=8", "--warmup_steps=3",
      "--eval_interval=1000"]  # fmt: skip


def case(command: str, stage: str, args: Callable[[Path], list[str]], id: str, **kw) -> object:
    return pytest.param(Command(command, stage, args, steps=kw.pop("steps", 24), **kw), id=id)


COMMANDS = [
    case("train", "gpt", lambda d: [*GPT, f"--dataset=text:{text_file(d)}", "--sample_length=0"],
         id="gpt-train"),
    # SIGINT after 2 epochs' ends (6 steps an epoch; 4 for translation): the best so far,
    # kept before the interruption, must still be the one kept at the end
    case("train", "transformer", lambda d: [*TRANSFORMER, *sentiment(d), "--model.num_layers=1",
                                            "--report_errors=0", "--select_fraction=0.05"],
         id="transformer-train-classification", signal_after=13),
    case("train", "transformer", lambda d: [*TRANSFORMER, "--task=translation",
                                            *pairs(d, copy=True), "--min_freq=1",
                                            "--val_bleu_sentences=0", "--beam_size=2",
                                            "--model.num_encoder_layers=1",
                                            "--model.num_decoder_layers=1"],
         id="transformer-train-translation", signal_after=13),
    case("train", "attention", lambda d: [*pairs(d, copy=False), "--batch_size=16",
                                          "--min_freq=1", "--beam_size=2",
                                          "--val_bleu_sentences=3", "--model.emb_dim=8",
                                          "--model.hidden=8", "--model.dropout=0.2"],
         id="attention-train"),
    case("pretrain", "bert", lambda d: [*(f"--model.{a}" for a in BERT), *BERT_RUN,
                                        f"--dataset=jsonl:{bert_texts(d)}", "--vocab_size=100",
                                        "--val_rows=16", "--max_length=16"],
         id="bert-pretrain"),
    case("finetune", "bert", lambda d: [*(f"--scratch.{a}" for a in BERT), *BERT_RUN,
                                        "--init=none", "--select_rows=100", "--train_rows=300"],
         id="bert-finetune", needs="sst2"),
    case("pretrain", "t5", lambda d: [*T5, f"--dataset=text:{t5_text(d)}", "--chunk_length=16",
                                      "--val_rows=10"],
         id="t5-pretrain"),
    case("finetune", "t5", lambda d: [*T5, *t5_tasks(d), "--select_rows=40",
                                      "--max_input_length=16", "--max_target_length=8"],
         id="t5-finetune"),
    # pystdlib: always there offline; 128 streams make the final pass over its val split short
    case("train", "seq_models", lambda d: ["--dataset=pystdlib", "--model.embed_dim=8",
                                           "--model.hidden_size=16", "--model.num_layers=1",
                                           "--batch_size=128", "--seq_len=16",
                                           "--eval_interval=1000", "--eval_iters=1",
                                           "--sample_length=0", "--warmup_steps=3"],
         id="seq_models-train"),
    # one process, as `train --stage=training_kit` runs gpt's task; it writes runs/gpt/
    case("train", "training_kit", lambda d: ["--task=gpt", "--strategy=single", *GPT,
                                             f"--text_file={text_file(d)}", "--optimizer=adamw",
                                             "--sample_length=0"],
         id="training_kit-train-gpt", folder="gpt"),
    # gpt sft: LoRA (a checkpoint holds only the adapters and the new rows) and in full
    case("sft", "gpt", lambda d: [*sft_base(d), "--lora.rank=4", "--lora.dropout=0.1",
                                  "--lr=5e-3"],
         id="gpt-sft-lora"),
    case("sft", "gpt", lambda d: [*sft_base(d), "--optimizer=muon"], id="gpt-sft-full"),
    # gpt dpo with LoRA, and rl: SIGINT mid-round too (a round is 2 steps), the round's
    # replies come back from the checkpoint; a reward for ending makes the tiny policy learn
    case("dpo", "gpt", lambda d: [f"--data={post_base(d)}", "--init=post-sft", "--val_rows=10",
                                  "--batch_size=8", "--max_length=32", "--eval_interval=1000",
                                  "--warmup_steps=3", "--lora.rank=4", "--lr=5e-3"],
         id="gpt-dpo-lora"),
    case("rl", "gpt", lambda d: rl_options(d), id="gpt-rl", signal_after=5),
    # mlp train is not here: it refuses --resume (its loops save only checkpoints/final).
]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Running them


def rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def losses(run: Path, key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows(run) if key in r}


class Interrupted:
    """The command as a real process, sent SIGINT once it has logged `after` steps (watched
    from a thread, so the straight run can go on in this process meanwhile)."""

    def __init__(self, argv: list[str], run: Path, key: str, after: int,
                 signum: int = signal.SIGINT) -> None:  # fmt: skip
        self.signum = signum
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)  # fmt: skip
        self.run, self.key, self.after = run, key, after
        self.watcher = threading.Thread(target=self.watch, daemon=True)
        self.watcher.start()

    def watch(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                logged = len(losses(self.run, self.key))
            except json.JSONDecodeError:  # a line half written
                logged = 0
            if logged >= self.after:
                self.process.send_signal(self.signum)
                return
            time.sleep(0.01)

    def result(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=180)
        self.watcher.join()
        return self.process.returncode, out, err

    def __enter__(self) -> "Interrupted":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:  # the test failed before it waited: stop the run
            self.process.kill()
            self.process.communicate()


def printed_resume(out: str) -> tuple[str, list[str]]:
    """`resume with: uv run --package STAGE COMMAND --resume=RUN ...` -> (COMMAND, argv)."""
    line = next(x for x in out.splitlines() if "resume with: " in x)
    words = shlex.split(line.split("resume with: ", 1)[1])
    package = words[words.index("--package") + 1]
    command = words[words.index("--package") + 2]
    argv = [f"--stage={package}"]
    for i, word in enumerate(words):
        if word.startswith("--resume="):
            argv.append(word)
        elif word == "--resume":
            argv.append(f"--resume={words[i + 1]}")
    return command, argv


@pytest.fixture
def isolated(tmp_path, monkeypatch, keep_threads) -> Path:
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    mirror = repo_root().parent / "shared" / "data"  # the project's mirror, as CI's
    if "DATASETS_MIRROR" not in os.environ and mirror.is_dir():
        monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    return tmp_path / "runs"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_ctrl_c_then_resume_gives_the_uninterrupted_losses(cmd: Command, tmp_path, isolated):
    if cmd.needs:
        dataset_or_skip(cmd.needs)
    runs, n, key = cmd.runs(isolated), cmd.steps, cmd.loss_key
    args = [f"--stage={cmd.stage}", *cmd.args(tmp_path), *CPU, f"--max_steps={n}"]

    cut = runs / "cut"
    argv = [str(BIN / cmd.command), *args, "--run_name=cut"]
    with Interrupted(argv, cut, key, cmd.signal_after) as interrupted:
        assert run_command(cmd.command, [*args, "--run_name=straight"]) == 0
        code, out, err = interrupted.result()
    straight = losses(runs / "straight", key)
    assert sorted(straight) == list(range(1, n + 1))
    assert code == 130, (out[-2000:], err[-2000:])
    assert "resume with: " in out, out[-2000:]
    assert (cut / "checkpoints" / "interrupted").is_dir()
    stopped = max(losses(cut, key))
    assert cmd.signal_after <= stopped < n, "SIGINT landed after the run's end"
    before = rows(cut)

    command, argv = printed_resume(out)
    existing = set(runs.iterdir())
    assert run_command(command, [*argv, f"--max_steps={n}"]) == 0
    new = sorted(set(runs.iterdir()) - existing)
    resumed = new[0] if new else cut  # a new run folder, or the interrupted one continued
    assert rows(resumed)[: len(before)] == before
    after = losses(resumed, key)
    assert sorted(after) == list(range(1, n + 1))  # the old steps, then the new ones
    assert {s: after[s] for s in after if s > stopped} == {
        s: straight[s] for s in straight if s > stopped
    }
    kept = [meta(run / "checkpoints" / "best") for run in (runs / "straight", resumed)]
    assert kept[0] == kept[1]  # with KeepBest: the same step kept, with the same scores


def meta(checkpoint: Path) -> dict | None:
    """A kept checkpoint's step and scores (None where the stage keeps none)."""
    if not checkpoint.is_dir():
        return None
    saved = json.loads((checkpoint / "meta.json").read_text())
    return {"step": saved["step"], "metrics": saved.get("metrics")}


def test_sigterm_stops_like_ctrl_c_but_exits_143(tmp_path, isolated):
    """SIGTERM (a scheduler's kill, a container stopping) takes the same path with its own
    exit code: the step finishes, checkpoints/interrupted, the resume line."""
    cmd = COMMANDS[0].values[0]
    cut = isolated / cmd.stage / "cut"
    argv = [str(BIN / cmd.command), f"--stage={cmd.stage}", *cmd.args(tmp_path), *CPU,
            "--max_steps=100000", "--run_name=cut"]  # fmt: skip
    with Interrupted(argv, cut, cmd.loss_key, cmd.signal_after, signal.SIGTERM) as interrupted:
        code, out, err = interrupted.result()
    assert code == 143, (out[-2000:], err[-2000:])
    assert "resume with: " in out
    stopped = meta(cut / "checkpoints" / "interrupted")
    assert stopped is not None and stopped["step"] == max(losses(cut, cmd.loss_key))
