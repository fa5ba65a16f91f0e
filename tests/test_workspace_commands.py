"""Every installed stage command runs through the real console scripts: `--help` works, and a
bad option ends in one line and exit code 2 with nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.commands import available

BIN = Path(sys.executable).parent
OFFERED = sorted((stage, command) for stage, cmds in available().items() for command in cmds)


def _run(*args: str, runs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNS_DIR": str(runs), "DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=120
    )


def test_some_stage_offers_commands():
    assert OFFERED, "no stage registers commands; is the workspace synced (--all-packages)?"


@pytest.mark.parametrize("stage, command", OFFERED)
def test_help_lists_the_options(stage, command, tmp_path):
    result = _run(command, "--stage", stage, "--help", runs=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {stage} {command}")
    assert "--config=FILE" in result.stdout


@pytest.mark.parametrize("stage, command", OFFERED)
def test_bad_option_is_one_line_and_exit_2(stage, command, tmp_path):
    result = _run(command, "--stage", stage, "--no-such-option=1", runs=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: unknown option --no-such-option for {stage} {command}; see --help for the "
        "valid options"
    ]
    assert not any(tmp_path.iterdir()), "a rejected command wrote files"


def test_stage_commands_lists_everything(tmp_path):
    result = _run("stage-commands", runs=tmp_path)
    assert result.returncode == 0
    for stage, command in OFFERED:
        assert f"uv run --package {stage} {command}" in result.stdout
