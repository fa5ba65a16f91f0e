"""Ctrl-C and SIGTERM during `gpt train`: a real process, a real signal, a checkpoint at the
step it stopped on, and a resume that continues with the losses of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt.cli import train

ARGS = [
    "--tokenizer=char",  # the tests were written for one id per character
    "--model.n_layer=1",
    "--model.n_head=2",
    "--model.n_embd=32",
    "--model.block_size=16",
    "--batch-size=8",
    "--time-limit=0",
    "--eval-interval=1000",
    "--sample-length=0",
    "--precision=fp32",
    "--device=cpu",
    "--threads=1",
    "--decay=constant",  # the rate must not depend on --max-steps, which the runs below change
    "--warmup-steps=0",
]


def losses(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def train_until_signalled(
    args: list[str], folder: Path, signum: int
) -> subprocess.CompletedProcess:
    """Start `train` through the shared dispatcher, signal it once it has logged 5 steps."""
    command = [str(Path(sys.executable).parent / "train"), "--stage=gpt", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / "metrics.jsonl").is_file() and len(losses(folder)) >= 5:
            process.send_signal(signum)
            break
        time.sleep(0.05)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_gpt_train_saves_a_checkpoint_on_a_signal_and_resumes_exactly(
    tmp_path, monkeypatch, signum
):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    text_file = tmp_path / "text.txt"
    text_file.write_text("To be, or not to be, that is the question.\n" * 80, encoding="utf-8")
    runs = tmp_path / "runs" / "gpt"
    common = [*ARGS, f"--text-file={text_file}"]

    cut = train_until_signalled(
        [*common, "--max-steps=1000000", "--run-name=cut"], runs / "cut", signum
    )
    assert cut.returncode == 128 + signum, cut.stderr[-2000:]
    assert f"resume with: uv run --package gpt train --resume={runs / 'cut'}" in cut.stdout
    checkpoint = runs / "cut" / "checkpoints" / "interrupted"
    stopped_at = json.loads((checkpoint / "meta.json").read_text())["step"]
    assert stopped_at >= 5 and max(losses(runs / "cut")) == stopped_at  # stopped at a boundary

    end = stopped_at + 5
    train([f"--resume={runs / 'cut'}", f"--max-steps={end}", "--run-name=resumed"])
    train([*common, f"--max-steps={end}", "--run-name=straight"])
    straight, resumed = losses(runs / "straight"), losses(runs / "resumed")
    assert sorted(resumed) == list(range(1, end + 1))  # the old steps, then the new ones
    assert resumed == pytest.approx(straight, rel=1e-6, abs=1e-6)
