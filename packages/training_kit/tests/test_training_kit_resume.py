"""`--resume`: a kit run continues from its latest checkpoint with exactly the losses of an
uninterrupted run, under the same strategy or another one (DDP -> FSDP here)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.commands import run_command

TINY = [
    "--tokenizer=char",
    "--optimizer=adamw",
    "--model.n_layer=1",
    "--model.n_head=2",
    "--model.n_embd=32",
    "--model.block_size=16",
    "--batch_size=4",
    "--time_limit=0",
    "--eval_interval=3",
    "--eval_iters=1",
    "--precision=fp32",
    "--device=cpu",
    "--threads=1",
    "--decay=constant",  # the rate must not depend on --max_steps, which the runs below change
    "--warmup_steps=0",
]


def losses(folder: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def kit(*args: str) -> int:
    return run_command("train", ["--stage=training_kit", *args])


@pytest.mark.parametrize("optimizer", ["muon"])  # adamw: tests/test_workspace_resume.py
def test_a_single_process_run_resumes_exactly(runs, text_file, optimizer):
    """With dropout: the checkpoint keeps the generator its masks come from (AdamW's run is
    the workspace resume test's training_kit entry, interrupted by a real SIGINT)."""
    common = [*TINY, f"--text_file={text_file}", f"--optimizer={optimizer}", "--model.dropout=0.2"]
    assert kit(*common, "--max_steps=3", "--run_name=cut") == 0
    assert kit("--resume=cut", "--max_steps=6", "--run_name=resumed") == 0
    assert kit(*common, "--max_steps=6", "--run_name=straight") == 0
    resumed, straight = losses(runs / "gpt" / "resumed"), losses(runs / "gpt" / "straight")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]  # the old steps, then the new ones
    assert resumed == pytest.approx(straight, rel=1e-6)


def test_a_ddp_run_resumes_under_fsdp_with_the_same_losses(runs, text_file):
    common = [*TINY, f"--text_file={text_file}"]
    two = ["--num_processes=2"]
    assert kit("--strategy=ddp", *two, *common, "--max_steps=3", "--run_name=ddp") == 0
    assert kit("--strategy=fsdp", *two, "--resume=ddp", "--max_steps=6", "--run_name=fsdp") == 0
    # DDP on 2 processes takes the steps of one process accumulating 2 (test_..._proof.py)
    assert kit(*common, "--accumulation_steps=2", "--max_steps=6", "--run_name=one") == 0
    resumed, straight = losses(runs / "gpt" / "fsdp"), losses(runs / "gpt" / "one")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert resumed == pytest.approx(straight, rel=1e-5)
    meta = json.loads((runs / "gpt" / "fsdp" / "checkpoints" / "final" / "meta.json").read_text())
    assert meta["training_kit"]["strategy"] == "fsdp" and meta["step"] == 6


def test_zero2_resumes_under_zero3_with_the_same_losses(runs, text_file):
    """DeepSpeed keeps Adam's moments in flat pieces, one per process; the checkpoint holds
    them whole and by parameter name, so a run resumes under another ZeRO stage (or engine).
    gpt's AdamW has two parameter groups, which ZeRO-2 links to their moments only after
    the kit's fix (strategies.py): without it, this run's first checkpoint fails."""
    common = [*TINY, f"--text_file={text_file}", "--num_processes=2", "--strategy=deepspeed"]
    assert kit(*common, "--zero_stage=2", "--max_steps=3", "--run_name=z2") == 0
    assert kit("--strategy=deepspeed", "--zero_stage=3", "--num_processes=2", "--resume=z2",
               "--max_steps=6", "--run_name=z3") == 0  # fmt: skip
    straight = [*TINY, f"--text_file={text_file}", "--accumulation_steps=2"]
    assert kit(*straight, "--max_steps=6", "--run_name=one") == 0
    resumed, one = losses(runs / "gpt" / "z3"), losses(runs / "gpt" / "one")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert resumed == pytest.approx(one, rel=1e-5)


def test_a_run_of_the_stages_own_loop_is_resumed_by_its_stage(runs, text_file, capsys):
    """`gpt train`'s own run is resumed by `gpt train --resume`: the kit says so."""
    gpt = ["--stage=gpt", *TINY, f"--text_file={text_file}", "--max_steps=3", "--run_name=own",
           "--sample_length=0"]  # fmt: skip
    assert run_command("train", gpt) == 0
    capsys.readouterr()
    assert kit(f"--resume={runs / 'gpt' / 'own'}", "--max_steps=6") == 2
    err = capsys.readouterr().err
    assert (
        "resume it with the command that trained it" in err
        and f"--resume={runs / 'gpt' / 'own'}" in err
    )


def test_ctrl_c_stops_every_worker_at_a_step_and_the_run_resumes_exactly(runs, text_file):
    """A real SIGINT to the launcher of 2 DDP workers: it forwards it, they agree to stop after
    the same step, save checkpoints/interrupted and exit 130; resuming continues exactly."""
    common = [*TINY, "--eval_interval=1000", f"--text_file={text_file}"]
    command = [str(Path(sys.executable).parent / "train"), "--stage=training_kit",
               "--strategy=ddp", "--num_processes=2", *common, "--max_steps=100000",
               "--run_name=cut"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**__import__("os").environ, "RUNS_DIR": str(runs)})  # fmt: skip
    folder = runs / "gpt" / "cut"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if (folder / "metrics.jsonl").is_file() and len(losses(folder)) >= 5:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert f"resume with: uv run --package training_kit train --resume={folder}" in out
    stopped = json.loads((folder / "checkpoints" / "interrupted" / "meta.json").read_text())
    assert stopped["step"] >= 5 and max(losses(folder)) == stopped["step"]

    end = stopped["step"] + 3  # resumed in one process accumulating 2: DDP x 2's steps
    assert kit("--resume=cut", "--accumulation_steps=2", f"--max_steps={end}",
               "--run_name=resumed") == 0  # fmt: skip
    assert kit(*common, "--accumulation_steps=2", f"--max_steps={end}", "--run_name=one") == 0
    resumed, straight = losses(runs / "gpt" / "resumed"), losses(runs / "gpt" / "one")
    assert sorted(resumed) == list(range(1, end + 1))
    assert resumed == pytest.approx(straight, rel=1e-5)


def test_a_char_lstm_split_over_two_processes_resumes_in_one_with_its_streams_state(runs):
    """Each DDP worker carries the state of its own 2 of the 4 streams; the checkpoint gathers
    them, and one process resuming reads all 4 streams on from the same state."""
    tiny = [
        "--batch_size=4",
        "--seq_len=16",
        "--model.embed_dim=8",
        "--model.hidden_size=32",
        "--time_limit=0",
        "--eval_interval=3",
        "--eval_iters=1",
        "--precision=fp32",
        "--device=cpu",
        "--threads=1",
        "--warmup_steps=0",
        "--min_lr_ratio=1",  # a constant rate: the runs' step caps differ
    ]
    assert kit("--task=seq_models", "--strategy=ddp", "--num_processes=2", "--", *tiny,
               "--max_steps=3", "--run_name=split") == 0  # fmt: skip
    meta = json.loads((runs / "seq_models" / "split" / "checkpoints" / "final" / "meta.json")
                      .read_text())  # fmt: skip
    h, c = meta["fit"]["sampler"]["carry"]
    assert (len(h), len(h[0]), len(h[0][0])) == (2, 4, 32)  # (layers, all 4 streams, H)
    assert kit("--resume=split", "--max_steps=6", "--run_name=joined") == 0
    assert kit("--task=seq_models", "--", *tiny, "--max_steps=6", "--run_name=one") == 0
    resumed, straight = losses(runs / "seq_models" / "joined"), losses(runs / "seq_models" / "one")
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert resumed == pytest.approx(straight, rel=1e-5)
