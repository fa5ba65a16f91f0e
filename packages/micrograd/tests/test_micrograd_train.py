"""The `train` command: both tasks learn, and write a complete run folder."""

import json

import numpy as np
import pytest

from micrograd.cli import make_moons, train
from shared.checkpoint import load_checkpoint
from shared.errors import ConfigError


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    return tmp_path / "micrograd"


def test_linear_regression_recovers_w_and_b(runs_in_tmp, capsys):
    train(["--task=linear", "--steps=150", "--run-name=lin", "--true-w=1.5", "--true-b=0.25"])
    folder = runs_in_tmp / "lin"
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(last["w"] - 1.5) < 0.05 and abs(last["b"] - 0.25) < 0.05
    out = capsys.readouterr()
    assert "truth: w = 1.5, b = 0.25" in out.out and "step  150  w = +1.4" in out.out
    assert {"config.json", "metrics.jsonl", "loss.png", "w_and_b.png", "checkpoints"} <= {
        p.name for p in folder.iterdir()
    }
    assert load_checkpoint(folder / "checkpoints" / "final").meta["step"] == 150


def test_moons_classifier_separates_the_moons(runs_in_tmp):
    train(["--task=moons", "--run-name=m", "--steps=300"])
    folder = runs_in_tmp / "m"
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["accuracy"] >= 0.97
    png = (folder / "decision_boundary.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_same_seed_same_numbers(runs_in_tmp):
    train(["--task=moons", "--steps=20", "--run-name=a"])
    train(["--task=moons", "--steps=20", "--run-name=b"])
    rows = [
        [json.loads(line)["loss"] for line in (runs_in_tmp / n / "metrics.jsonl").open()]
        for n in ("a", "b")
    ]
    assert rows[0] == rows[1]


def test_moons_data_shape_and_balance():
    x, y = make_moons(101, 0.0, np.random.default_rng(0))
    assert x.shape == (101, 2) and y.shape == (101,) and y.sum() == 51
    top = x[y == 0]
    np.testing.assert_allclose(np.hypot(top[:, 0], top[:, 1]), 1.0)  # on the unit circle


def test_bad_option_is_a_config_error(runs_in_tmp):
    with pytest.raises(ConfigError, match="unknown option --task-name for micrograd train"):
        train(["--task-name=moons"])
    with pytest.raises(ConfigError, match="--task expects one of 'linear', 'moons'"):
        train(["--task=spiral"])
    assert not runs_in_tmp.exists()  # nothing written for a bad command line
