"""Tracking, search and comparison: TensorBoard through Accelerate's tracker, an Optuna study
that resumes, and `compare`'s table and plot."""

import csv

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
    "--threads=1",
]


def test_tensorboard_gets_every_logged_loss(runs, text_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code = run_command("train", ["--stage=training_kit", "--tracker=tensorboard", *TINY,
                                 "--max_steps=6", "--eval_interval=3", f"--text_file={text_file}",
                                 "--run_name=tb"])  # fmt: skip
    assert code == 0
    logs = list((runs / "gpt" / "tb" / "tensorboard").rglob("events.out.tfevents.*"))
    assert logs
    events = EventAccumulator(str(logs[0].parent))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("val_loss")] == [3, 6]


def test_a_sweep_writes_its_results_and_resumes_where_it_stopped(runs, text_file, capsys):
    space = text_file.parent / "space.toml"
    space.write_text('[space]\nlr = { log = [1e-3, 3e-2] }\noptimizer = { choice = ["adamw"] }\n')
    args = ["--stage=training_kit", "--study=tiny", f"--space={space}", *TINY, "--max_steps=6",
            "--eval_interval=3", f"--text_file={text_file}"]  # fmt: skip
    assert run_command("sweep", [*args, "--trials=3"]) == 0
    assert run_command("sweep", [*args, "--trials=4"]) == 0  # one more, not four
    out = capsys.readouterr().out
    assert "study tiny: 3 trials done, 1 to go" in out
    folder = runs / "training_kit" / "sweeps" / "tiny"
    with open(folder / "trials.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert len({r["lr"] for r in rows}) == 4  # the resumed sampler did not repeat itself
    assert (folder / "history.png").is_file() and (folder / "study.db").is_file()
    assert sorted(p.name for p in (runs / "gpt").iterdir())[:4] == [f"tiny-00{i}" for i in range(4)]


def test_a_grid_sweep_tries_each_point_once_and_stops(runs, text_file, capsys):
    space = text_file.parent / "space.toml"
    space.write_text('[space]\nlr = { grid = [1e-3, 1e-2] }\noptimizer = { choice = ["adamw"] }\n')
    assert run_command("sweep", ["--stage=training_kit", "--study=grid", f"--space={space}",
                                 "--sampler=grid", "--trials=5", *TINY, "--max_steps=3",
                                 "--eval_interval=3", f"--text_file={text_file}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "study grid: 0 trials done, 5 to go" in out and "the grid is done" in out
    with open(runs / "training_kit" / "sweeps" / "grid" / "trials.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(float(r["lr"]) for r in rows) == [1e-3, 1e-2]  # two points, not five trials
    assert "best: trial" in out and "(lowest)" in out  # val_loss: minimised


@pytest.mark.parametrize(
    ("args", "says"),
    [([], "name the study: --study NAME"), (["--study=x", "--space=nope.toml"], "cannot read"),
     (["--study=x", "--sampler=grid"], "lr is a log range [0.0003, 0.03]: list the points"),
     (["--study=x", "--metric=tokens_per_second"], "say --direction maximize or --direction")],
)  # fmt: skip
def test_sweep_errors_are_one_line(runs, capsys, args, says):
    assert run_command("sweep", ["--stage=training_kit", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_compare_prints_a_table_and_draws_the_curves(runs, text_file, capsys):
    for name, lr in (("slow", "1e-3"), ("fast", "1e-2")):
        code = run_command("train", ["--stage=training_kit", *TINY, "--max_steps=6",
                                     "--eval_interval=3", f"--lr={lr}", f"--muon_lr={lr}",
                                     f"--text_file={text_file}", f"--run_name={name}"])  # fmt: skip
        assert code == 0
    capsys.readouterr()
    out_png = runs / "both.png"
    assert run_command("compare", ["--stage=training_kit", "slow", "fast", f"--out={out_png}"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["run", "stage", "how", "steps"]
    assert table[1].startswith("slow") and table[2].startswith("fast")
    assert "single x 1" in table[1]
    assert out_png.is_file() and out_png.stat().st_size > 10_000
    assert run_command("compare", ["--stage=training_kit", "nope"]) == 2
