"""The same option has the same name and meaning in every stage's `train --help` (issue #13).

Each stage's `train --help` runs in-process through the dispatcher. The names that used to mean
the same thing under different spellings must be gone, and the time limit is in seconds
everywhere (it once was minutes in two stages and seconds in two others).
"""

import re

import pytest

from shared.commands import available, run_command

TRAINERS = sorted(available("train"))

# old spelling -> the one name every stage uses now
RETIRED = {
    "max_iters": "max_steps",
    "warmup_iters": "warmup_steps",
    "eval_every": "eval_interval",
    "eval_batches": "eval_iters",
    "lr_final": "min_lr_ratio",
    "clip": "grad_clip",
}


def train_help(stage: str, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        run_command("train", ["--stage", stage, "--help"])
    assert done.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("stage", TRAINERS)
def test_train_help_uses_the_shared_names(stage, capsys):
    options = set(re.findall(r"^\s+--([a-z_.]+)[=\s]", train_help(stage, capsys), re.M))
    assert options, "no options found in --help"
    for old, new in RETIRED.items():
        assert old not in options, f"{stage} train still calls --{new} --{old}"


@pytest.mark.parametrize("stage", TRAINERS)
def test_the_time_limit_is_in_seconds_everywhere(stage, capsys):
    lines = [line for line in train_help(stage, capsys).splitlines() if "--time_limit=" in line]
    for line in lines:
        assert "seconds" in line and "minutes" not in line, f"{stage}: {line.strip()}"
