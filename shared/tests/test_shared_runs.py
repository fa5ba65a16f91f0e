"""Run folders, metrics, plots, seeding and device selection."""

import json
import random

import numpy as np
import pytest

from shared import seeding
from shared.checkpoint import save_checkpoint
from shared.config import option
from shared.errors import CheckpointError, ConfigError, UsageError
from shared.runs import Run, find_checkpoint, latest_checkpoint, latest_run


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _config():
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        lr: float = option(0.5, "learning rate")

    return Cfg()


def test_run_folder_config_metrics_plot_and_summary(runs_in_tmp, capsys):
    run = Run.start("demo", _config(), name="first")
    with run.progress(total=3) as bar:
        for step in range(3):
            bar.advance(loss=1.0 / (step + 1), items=100)
            run.log(step, loss=1.0 / (step + 1), val_loss=float("nan") if step else 2.0)
    png = run.plot_metrics("loss.png", ["loss", "val_loss"], title="demo")
    run.finish()
    out = capsys.readouterr()
    assert "lr = 0.5" in out.out and f"run folder: {runs_in_tmp / 'demo' / 'first'}" in out.out
    assert "loss=0.3333" in out.err and "tok/s" in out.err  # the progress bar
    assert json.loads((run.folder / "config.json").read_text()) == {"lr": 0.5}
    rows = run.metrics()
    assert [r["step"] for r in rows] == [0, 1, 2] and rows[1]["val_loss"] is None
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 5_000
    assert f"wrote {run.folder}/" in out.out and "loss.png" in out.out


def test_same_name_twice_gets_a_new_folder_and_latest_finds_it(runs_in_tmp):
    first = Run.start("demo", _config(), name="x", quiet=True)
    second = Run.start("demo", _config(), name="x", quiet=True)
    assert first.folder != second.folder and second.folder.name == "x-2"
    assert Run.open("demo").folder == second.folder
    assert Run.open("demo", "x").folder == first.folder


def test_open_without_runs_says_how_to_make_one():
    with pytest.raises(UsageError, match="no demo runs in .* train one first"):
        Run.open("demo")
    with pytest.raises(UsageError, match="no run 'nope'"):
        Run.open("demo", "nope")


def test_seed_everything_makes_numbers_repeat():
    torch = pytest.importorskip("torch")
    seeding.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seeding.seed_everything(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_rng_state_round_trips_through_json():
    torch = pytest.importorskip("torch")
    seeding.seed_everything(5)
    state = json.loads(json.dumps(seeding.rng_state()))
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seeding.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_device_and_precision_choices():
    pytest.importorskip("torch")
    from shared.device import autocast, pick_device, resolve_precision

    cpu = pick_device("cpu")
    assert cpu.type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_precision("auto", cpu) in ("bf16", "fp32")  # the verdict: test_shared_device
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cpu)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
            pick_device("cuda")
    x = torch.ones(2, 2)
    with autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (x @ x).dtype == torch.float32


def test_progress_piped_prints_whole_lines_not_carriage_returns(capsys, monkeypatch):
    """Under pytest stderr is no terminal, as in `train > log 2>&1`: no \\r, every line ends."""
    from shared.runs import Progress

    now = [0.0]  # a fake clock: each step takes 4 s
    monkeypatch.setattr("shared.runs.time.perf_counter", lambda: now[0])
    with Progress(total=5, desc="train", log_every=10.0) as bar:
        for step in range(5):
            now[0] += 4.0
            bar.advance(loss=2.0 - step / 10, items=100)
            bar.write(f"step {step} done")
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    assert out.splitlines() == [f"step {i} done" for i in range(5)]
    lines = err.splitlines()
    assert len(lines) == 2  # at 12 s (10 s or more since the start), then at the end
    assert lines[0] == "train: 3/5 step, 12s, loss=1.8000, tok/s=25"
    assert lines[-1] == "train: 5/5 step, 20s, loss=1.6000, tok/s=25"


def _save(run: Run, name: str, step: int) -> None:
    save_checkpoint(run.checkpoints / name, {"w": np.zeros(2, np.float32)}, meta={"step": step})


def test_latest_run_and_its_latest_checkpoint_by_step(runs_in_tmp):
    with pytest.raises(UsageError, match="no demo runs in .* train one first"):
        latest_run("demo")
    older = Run.start("demo", _config(), name="older", quiet=True)
    run = Run.start("demo", _config(), name="newer", quiet=True)
    assert latest_run("demo") == run.folder
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        latest_checkpoint(run.folder)
    # names sort one way, steps another: the step decides, not the name or the order of writing
    _save(run, "step_000900", 900)
    _save(run, "step_001000", 1000)
    _save(run, "best", 300)
    (run.checkpoints / ".step_001100.tmp-x").mkdir()  # a save that was interrupted
    assert latest_checkpoint(run.folder).name == "step_001000"
    _save(run, "final", 1000)  # the same step as the last periodic one: the later wins
    assert latest_checkpoint(run.folder).name == "final"

    _save(older, "final", 5)
    assert find_checkpoint("demo") == run.checkpoints / "final"  # the latest run
    assert find_checkpoint("demo", "older") == older.checkpoints / "final"  # a run by name
    assert find_checkpoint("demo", older.folder) == older.checkpoints / "final"  # by folder
    given = run.checkpoints / "best"
    assert find_checkpoint("demo", given) == given  # a checkpoint itself
