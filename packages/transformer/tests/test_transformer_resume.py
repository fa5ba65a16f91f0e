"""Ctrl-C during `transformer train`, for both tasks: a real process, a real SIGINT, a
checkpoint at the step it stopped on, and a resume that continues with the losses of an
uninterrupted run (dropout on, so the RNG states must come back too)."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transformer.cli import train

WORDS = ["the", "film", "plot", "was", "very", "quite", "dull", "great", "music", "cast"]


def sentiment_rows(n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        rows.append(f"{' '.join(words)}\t{int('great' in words)}")
    return "\n".join(rows) + "\n"


def copy_pairs(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        lines.append(f"{words}\t{words}")
    return "\n".join(lines) + "\n"


COMMON = [
    "--batch_size=16", "--lr=3e-3", "--warmup=0", "--schedule=constant", "--epochs=1000",
    "--precision=fp32", "--device=cpu", "--threads=1", "--accumulate=2", "--select_fraction=0.1",
]  # fmt: skip


def task_args(task: str, folder: Path) -> list[str]:
    if task == "classification":
        (folder / "train.tsv").write_text(sentiment_rows(200, 0), encoding="utf-8")
        (folder / "dev.tsv").write_text(sentiment_rows(40, 1), encoding="utf-8")
        return [
            f"--train_file={folder / 'train.tsv'}", f"--dev_file={folder / 'dev.tsv'}",
            "--model.d_model=16", "--model.nhead=2", "--model.num_layers=1",
            "--model.dim_feedforward=32", "--model.dropout=0.1", "--report_errors=2",
        ]  # fmt: skip
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        (folder / f"{split}.tsv").write_text(copy_pairs(120 if split == "train" else 8, seed))
    return [
        "--task=translation", *(f"--{s}_file={folder}/{s}.tsv" for s in ("train", "val", "test")),
        "--min_freq=1", "--val_bleu_sentences=0", "--beam_size=2", "--model.d_model=16",
        "--model.nhead=2", "--model.num_encoder_layers=1", "--model.num_decoder_layers=1",
        "--model.dim_feedforward=32", "--model.dropout=0.1",
    ]  # fmt: skip


def losses(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def train_until_signalled(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    """Start `train` through the shared dispatcher; SIGINT once it has logged 12 steps."""
    command = [str(Path(sys.executable).parent / "train"), "--stage=transformer", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / "metrics.jsonl").is_file() and len(losses(folder)) >= 12:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.parametrize("task", ["classification", "translation"])
def test_transformer_train_resumes_exactly_after_ctrl_c(tmp_path, monkeypatch, task):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    runs = tmp_path / "runs" / "transformer"
    common = [*COMMON, *task_args(task, tmp_path)]

    cut = train_until_signalled([*common, "--run_name=cut"], runs / "cut")
    assert cut.returncode == 130, cut.stderr[-2000:]
    assert f"resume with: uv run --package transformer train --resume={runs / 'cut'}" in cut.stdout
    meta = json.loads((runs / "cut" / "checkpoints" / "interrupted" / "meta.json").read_text())
    stopped_at = meta["step"]
    assert stopped_at >= 12 and max(losses(runs / "cut")) == stopped_at  # a step boundary
    assert meta["fit"]["sampler"]["epoch"] >= 2  # past an epoch's end: evaluated, best kept

    end = stopped_at + 9  # past another epoch's end (6 steps an epoch, 4 for translation)
    train([f"--resume={runs / 'cut'}", f"--max_steps={end}", "--run_name=resumed"])
    train([*common, f"--max_steps={end}", "--run_name=straight"])
    straight, resumed = losses(runs / "straight"), losses(runs / "resumed")
    assert sorted(resumed) == list(range(1, end + 1))  # the old steps, then the new ones
    assert resumed == pytest.approx(straight, rel=1e-6, abs=1e-6)
    best = [json.loads((runs / r / "checkpoints" / "best" / "meta.json").read_text())
            for r in ("straight", "resumed")]  # fmt: skip
    assert best[0]["step"] == best[1]["step"] and best[0]["metrics"] == best[1]["metrics"]
