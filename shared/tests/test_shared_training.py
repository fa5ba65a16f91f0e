"""The pieces every training loop shares: run options, the schedule, signals, pruning."""

import os
import signal

import pytest

from shared.config import parse_config
from shared.errors import ConfigError
from shared.training import RunOptions, StopSignals, lr_factor, prune_checkpoints


def test_run_options_need_an_end_and_sane_values():
    with pytest.raises(ConfigError, match="--time_limit or --max_steps"):
        parse_config(RunOptions, [], prog="x train")
    with pytest.raises(ConfigError, match="--eval_interval must be at least 1"):
        parse_config(RunOptions, ["--max-steps=5", "--eval-interval=0"], prog="x train")
    with pytest.raises(ConfigError, match="--time_limit must be at least 0, got -1.0"):
        parse_config(RunOptions, ["--max-steps=5", "--time-limit=-1"], prog="x train")
    opts = parse_config(RunOptions, ["--max-steps=5"], prog="x train")
    assert opts.save_every == opts.eval_interval == 100  # a checkpoint at every evaluation
    assert parse_config(RunOptions, ["--time-limit=9", "--checkpoint-interval=7"]).save_every == 7


def test_schedule_warms_up_then_decays_to_the_floor_by_steps():
    def f(step):
        return lr_factor(step, 0.0, warmup_steps=10, max_steps=110, min_ratio=0.1)

    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


@pytest.mark.parametrize(("decay", "half"), [("cosine", 0.5), ("linear", 0.5), ("constant", 1.0)])
def test_schedule_follows_the_clock_with_a_time_budget(decay, half):
    assert lr_factor(50, 5.0, warmup_steps=0, seconds=10.0, decay=decay) == pytest.approx(half)
    # Whichever budget is further along decides: 5 of 10 s, but 90 of 100 steps.
    linear = lr_factor(90, 5.0, warmup_steps=0, max_steps=100, seconds=10.0, decay="linear")
    assert linear == pytest.approx(0.1)
    assert lr_factor(3, 1.0, warmup_steps=0, seconds=0.0, min_ratio=0.2) == pytest.approx(0.2)


def test_first_signal_asks_to_stop_second_ctrl_c_stops_at_once(capsys):
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread's handler
        assert stop.requested and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the old handler is back
    assert "SIGTERM: stopping after this step" in capsys.readouterr().err


def test_sigint_exits_with_130_and_the_first_signal_decides():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. a scheduler's follow-up: still 130
    assert stop.exit_code == 130


def test_prune_keeps_the_latest_periodic_checkpoints(tmp_path):
    for name in ("step_999999", "step_1000000", "step_000300", "step_001000", "final", "best"):
        (tmp_path / name).mkdir()
    deleted = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["step_000300", "step_001000"]  # by number
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best",
        "final",
        "step_1000000",
        "step_999999",
    ]
