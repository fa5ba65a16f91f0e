"""Every installed stage command, through the dispatcher: `--help` lists the options, and a bad
option ends in one line on stderr and exit code 2 with nothing written.

These run in-process: `shared.commands.run_command` is what each console script calls, with the
stage named by `--stage`, so calling it with an argv list and reading capsys checks the same
thing as a subprocess would, without starting a Python that imports torch per command. One
subprocess test remains, `uv run --package STAGE COMMAND --help`: the console script itself, and
the dispatcher reading the stage from its parent process's arguments (only a real `uv run` can
show that). The rules of the dispatcher are tested one by one in shared/tests.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared import commands

ROOT = Path(__file__).resolve().parents[1]
# `exercise` is the learner's verb (shared/learn.py), not a run with a config: tested below.
OFFERED = sorted(
    (stage, command)
    for stage, cmds in commands.available().items()
    for command in cmds
    if command != "exercise"
)
EXERCISE_STAGES = sorted(commands.available("exercise"))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A runs folder of the test's own (to see that a rejected command writes nothing), offline."""
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    return tmp_path


def dispatch(command: str, argv: list[str]) -> int:
    """What the console script `command` does with `argv`, returning its exit code."""
    try:
        return commands.run_command(command, argv)
    except SystemExit as stop:  # --help exits from inside the stage's option parser
        return 0 if stop.code is None else stop.code


def test_some_stage_offers_commands():
    assert OFFERED, "no stage registers commands; is the workspace synced (--all-packages)?"


@pytest.mark.parametrize("stage, command", OFFERED)
def test_help_lists_the_options(stage, command, runs, capsys):
    code = dispatch(command, ["--stage", stage, "--help"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"usage: {stage} {command}")
    assert "--config=FILE" in out


@pytest.mark.parametrize("stage, command", OFFERED)
def test_bad_option_is_one_line_and_exit_2(stage, command, runs, capsys):
    code = dispatch(command, ["--stage", stage, "--no-such-option=1"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: unknown option --no-such-option for {stage} {command}; see --help for the "
        "valid options"
    ]
    assert out == ""
    assert not any(runs.iterdir()), "a rejected command wrote files"


@pytest.mark.parametrize("stage", EXERCISE_STAGES)
def test_exercise_help_and_a_bad_option(stage, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXERCISES_DIR", str(tmp_path))
    assert dispatch("exercise", ["--stage", stage, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: uv run --package {stage} exercise")
    assert dispatch("exercise", ["--stage", stage, "--no-such-option=1"]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert out == "" and not any(tmp_path.iterdir())


def test_stage_commands_lists_everything(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["stage-commands"])
    commands.list_commands()
    out = capsys.readouterr().out
    for stage, command in OFFERED:
        assert f"uv run --package {stage} {command}" in out


def test_uv_run_package_runs_the_console_script(runs):
    """The smoke test: the real `uv run --package`, no `--stage`, from the repository root.

    Run for one stage only: the console script and the parent-process rule are the same code
    for every stage. `train` is offered by several stages, so only the parent-process rule can
    pick the right one; tokenizers_fromscratch's imports no torch, so it starts fast.
    """
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    stage, command = "tokenizers_fromscratch", "train"
    if (stage, command) not in OFFERED:
        stage, command = OFFERED[0]
    result = subprocess.run(
        [uv, "run", "--no-sync", "--package", stage, command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {stage} {command}")
    assert "--config=FILE" in result.stdout
