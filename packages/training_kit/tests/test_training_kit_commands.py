"""`training_kit train` as a user types it: the error lines, a ZeRO-3 run on 2 processes whose
checkpoint `gpt sample` reads, and a worker killed mid-run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.commands import run_command

TINY = [
    "--tokenizer=char",
    "--model.n_layer=1",
    "--model.n_head=2",
    "--model.n_embd=32",
    "--model.block_size=16",
    "--batch_size=4",
    "--time_limit=0",
    "--eval_iters=1",
    "--precision=fp32",
    "--device=cpu",
]


def kit(*args: str) -> int:
    return run_command("train", ["--stage=training_kit", *args])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--task=nope"],
            "unknown task 'nope'; the installed stages offer: bert_finetune, gpt, seq_models, "
            "t5_finetune, transformer_sst2, transformer_translate",
        ),
        (["--strategy=ddp", "--zero_stage=2"], "--zero_stage is DeepSpeed's option"),
        (["--num_processes=2"], "--strategy single runs one process, not 2"),
        (["--strategy=fsdp", "--num_processes=2"], "MuonWithAdamW needs whole ones"),
        (["--strategy=deepspeed", "--zero_stage=4"], "zero_stage"),
        (["--strategy=horovod"], "strategy"),
        (["--strategy=ddp", "--batch_size=0"], "batch_size"),
    ],
)
def test_bad_options_get_one_line_exit_2_and_nothing_written(runs, text_file, capsys, args, says):
    assert kit(*args, *TINY, "--max_steps=1", f"--text_file={text_file}") == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.startswith("error: ") and "\n" not in err
    assert not runs.exists() or not any(runs.rglob("config.json"))


def test_a_port_in_use_is_refused(runs, text_file, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = kit("--strategy=ddp", "--num_processes=2", f"--port={port}", *TINY,
                   "--max_steps=1", f"--text_file={text_file}")  # fmt: skip
    assert code == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_more_processes_than_cores_is_a_warning_not_an_error(runs, text_file, capsys):
    """The warning comes first; the taken port then stops the command before any launch."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = kit("--strategy=ddp", "--num_processes=512", f"--port={port}", *TINY,
                   "--max_steps=1", f"--text_file={text_file}")  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: 512 processes on ") and "take turns" in err[0]
    assert code == 2 and err[-1].startswith(f"error: port {port}")


def test_zero3_on_two_processes_writes_a_gpt_checkpoint_that_gpt_sample_reads(
    runs, text_file, capfd
):
    code = kit("--strategy=deepspeed", "--zero_stage=3", "--num_processes=2", *TINY,
               "--optimizer=adamw", "--max_steps=6", "--eval_interval=3",
               f"--text_file={text_file}", "--run_name=zero3")  # fmt: skip
    out = capfd.readouterr().out  # the workers' lines too (capfd: other processes' output)
    assert code == 0, out
    assert "ZeRO-3: this process holds" in out  # the weights really were split
    folder = runs / "gpt" / "zero3"
    meta = json.loads((folder / "checkpoints" / "final" / "meta.json").read_text())
    assert meta["step"] == 6 and meta["training_kit"]["num_processes"] == 2
    losses = [m["loss"] for m in map(json.loads, (folder / "metrics.jsonl").open()) if "loss" in m]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (folder / "loss.png").is_file()

    code = run_command("sample", ["--stage=gpt", f"--run={folder}", "--max_new_tokens=20",
                                  "--prompt=To be"])  # fmt: skip
    assert code == 0
    assert capfd.readouterr().out.startswith("To be")


def worker_pids(run_folder: Path) -> dict[int, int]:
    """rank -> pid of the workers of the run in `run_folder` (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--run_folder={run_folder}".encode() in cmdline:
            env = dict(v.split(b"=", 1) for v in environ if b"=" in v)
            found[int(env[b"RANK"])] = int(entry.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
def test_a_killed_worker_stops_the_run_with_a_clear_error_and_a_usable_checkpoint(
    runs, text_file, tmp_path
):
    folder = runs / "gpt" / "killed"
    command = [str(Path(sys.executable).parent / "train"), "--stage=training_kit",
               "--strategy=ddp", "--num_processes=2", *TINY, "--max_steps=100000",
               "--eval_interval=5", f"--text_file={text_file}", "--run_name=killed"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RUNS_DIR": str(runs)})  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if list((folder / "checkpoints").glob("step_*/meta.json")):
            break
        time.sleep(0.2)
    pids = worker_pids(folder)
    assert set(pids) == {0, 1}, "the two workers should be running"
    os.kill(pids[1], signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: worker rank 1 killed by SIGKILL; the launcher"), last
    assert "last complete checkpoint: " in last
    checkpoint = Path(last.split("last complete checkpoint: ")[1])

    from gpt.runs import load_run_model

    model, _, meta, _ = load_run_model(str(checkpoint), device=__import__("torch").device("cpu"))
    assert meta["step"] % 5 == 0 and meta["step"] > 0
    assert not worker_pids(folder)  # no worker left behind


ABORTING_WORKER = """
import os, sys
if os.environ["RANK"] == "1":
    print("terminate called after throwing an instance of 'made::Up'", file=sys.stderr)
    sys.stderr.flush()
    os.abort()
"""


def test_a_worker_killed_by_a_signal_is_reported_with_its_last_words(tmp_path, monkeypatch):
    """A C++ abort leaves no traceback: the error must carry what the worker last printed."""
    from training_kit.launch import WorkersFailed, free_port, launch_workers

    (tmp_path / "aborting_worker.py").write_text(ABORTING_WORKER, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with pytest.raises(WorkersFailed) as failed:
        launch_workers(2, free_port(), [], module="aborting_worker")
    assert str(failed.value) == (
        "worker rank 1 killed by SIGABRT (its last words: terminate called after throwing an "
        "instance of 'made::Up'); the launcher stopped the other 1 worker"
    )
    assert failed.value.exit_code == 1


@pytest.mark.parametrize("strategy", ["--strategy=fsdp", "--zero_stage=1"])
def test_adafactor_is_refused_where_the_weights_are_split(runs, tiny_t5, capsys, strategy):
    extra = ["--strategy=deepspeed"] if "zero" in strategy else []
    code = kit("--task=t5_finetune", *extra, strategy, "--num_processes=2", "--",
               *tiny_t5("adafactor"))  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Adafactor needs whole ones" in err and "--optimizer=adamw" in err
    assert not runs.exists() or not any(runs.rglob("config.json"))
