"""Ctrl-C during `attention train`: a real process, a real SIGINT, a checkpoint at the step it
stopped on, and a resume that continues with the losses of an uninterrupted run (dropout on,
so the RNG states must come back too)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attention.cli import train

LEXICON = {"Ein": "A", "Mann": "man", "Hund": "dog", "sieht": "sees", "Ball": "ball"}


def toy_file(path: Path, n: int) -> Path:
    """n pairs of a word-for-word toy language, cycling through the sentences it can form."""
    nouns = ["Mann", "Hund", "Ball"]
    lines = []
    for i in range(n):
        words = ["Ein", nouns[i % 3], "sieht", nouns[(i // 3) % 3]]
        lines.append(" ".join(words) + "\t" + " ".join(LEXICON[w] for w in words))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def losses(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def train_until_signalled(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    """Start `train` through the shared dispatcher; SIGINT once it has logged 8 steps."""
    command = [str(Path(sys.executable).parent / "train"), "--stage=attention", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / "metrics.jsonl").is_file() and len(losses(folder)) >= 8:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_attention_train_resumes_exactly_after_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    runs = tmp_path / "runs" / "attention"
    common = [
        f"--train_file={toy_file(tmp_path / 'train.tsv', 60)}",
        f"--val_file={toy_file(tmp_path / 'val.tsv', 6)}",
        f"--test_file={toy_file(tmp_path / 'test.tsv', 6)}",
        "--max_steps=120", "--batch_size=16", "--min_freq=1", "--beam_size=2",
        "--val_bleu_sentences=3", "--model.emb_dim=8", "--model.hidden=8",
        "--model.dropout=0.2", "--precision=fp32", "--device=cpu", "--threads=1",
    ]  # fmt: skip

    cut = train_until_signalled([*common, "--run_name=cut"], runs / "cut")
    assert cut.returncode == 130, cut.stderr[-2000:]
    assert f"resume with: uv run --package attention train --resume={runs / 'cut'}" in cut.stdout
    meta = json.loads((runs / "cut" / "checkpoints" / "interrupted" / "meta.json").read_text())
    stopped_at = meta["step"]
    assert stopped_at >= 8 and max(losses(runs / "cut")) == stopped_at  # a step boundary
    assert (runs / "cut" / "vocab_de.json").is_file()

    # The same 120 steps (30 epochs of 4) and so the same cosine, resumed and uninterrupted.
    train([f"--resume={runs / 'cut'}", "--run_name=resumed"])
    train([*common, "--run_name=straight"])
    straight, resumed = losses(runs / "straight"), losses(runs / "resumed")
    assert sorted(resumed) == list(range(1, 121))  # the old steps, then the new ones
    assert resumed == pytest.approx(straight, rel=1e-6, abs=1e-6)
