"""The character language model: vocabulary, TBPTT batches and state carry, learning, sampling,
and the train / sample / eval commands end to end on a tiny model."""

import json

import pytest
import torch

from seq_models import cli
from seq_models.charlm import (
    CharLM,
    CharLMConfig,
    CharVocab,
    detach_state,
    generate,
    lm_loss,
    tbptt_batches,
)
from shared.config import parse_config
from shared.errors import ConfigError, UsageError
from shared.testing import dataset_or_skip

TEXT = "the cat sat on the mat. the dog sat on the log. " * 40
TINY = CharLMConfig(embed_dim=8, hidden_size=32, num_layers=1)


@pytest.fixture(scope="module")
def vocab():
    return CharVocab.from_text(TEXT)


def test_vocab_round_trip_and_unknown_characters(vocab):
    assert vocab.chars == " .acdeghlmnost"
    assert vocab.decode(vocab.encode("the dog")) == "the dog"
    with pytest.raises(UsageError, match="'Zbr'"):
        vocab.encode("Zebra")


def test_tbptt_windows_continue_each_stream(vocab):
    ids = vocab.encode(TEXT)
    windows = list(tbptt_batches(ids, batch_size=4, seq_len=10))
    n = (len(ids) - 1) // 4  # characters per stream
    assert len(windows) == -(-n // 10)
    x0, y0 = windows[0]
    x1, _ = windows[1]
    assert x0.shape == (4, 10)
    assert torch.equal(y0[:, :-1], x0[:, 1:])  # targets are the next characters
    assert torch.equal(x1[:, 0], y0[:, -1])  # the next window continues each row
    assert torch.equal(x0[1, 0], ids[n])  # row 1 starts a quarter of the way in


def test_carried_state_equals_reading_the_whole_sequence_at_once():
    """TBPTT's forward pass: two windows with the state carried over = one long window."""
    torch.manual_seed(0)
    model = CharLM(10, CharLMConfig(embed_dim=4, hidden_size=8, num_layers=2)).double()
    idx = torch.randint(0, 10, (3, 12))
    whole, _ = model(idx)
    first, state = model(idx[:, :5])
    second, _ = model(idx[:, 5:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)
    loss = lm_loss(second, idx[:, 5:])
    loss.backward()  # gradients stop at the window edge: the first window gets none
    assert state[0].grad_fn is not None and detach_state(state)[0].grad_fn is None


def test_tiny_model_learns_a_repetitive_text(vocab):
    torch.manual_seed(0)
    model = CharLM(len(vocab), TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids = vocab.encode(TEXT)
    losses, state = [], None
    for _ in range(3):
        for x, y in tbptt_batches(ids, batch_size=8, seq_len=16):
            logits, state = model(x, state)
            loss = lm_loss(logits, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state = detach_state(state)
            losses.append(loss.item())
    assert losses[0] > 2.3  # about ln(14) = 2.64 at the start
    assert sum(losses[-5:]) / 5 < 0.6, losses[-5:]


def test_generation_is_deterministic_with_a_seed(vocab):
    torch.manual_seed(0)
    model = CharLM(len(vocab), TINY)
    prompt = vocab.encode("the ")

    def run(seed, temperature=1.0):
        return generate(model, prompt, 30, temperature, torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    assert torch.equal(run(1, 0.0), run(2, 0.0))  # temperature 0: greedy, no randomness
    assert run(1).shape == (30,) and int(run(1).max()) < len(vocab)


# ----------------------------------------------------------------------------------------------
# The commands


TRAIN_ARGS = [
    "--model.embed_dim=8",
    "--model.hidden_size=16",
    "--model.num_layers=1",
    "--batch-size=8",
    "--seq-len=32",
    "--max-steps=6",
    "--time-limit=0",
    "--eval-interval=3",
    "--eval-iters=2",
    "--sample-length=20",
    "--precision=fp32",
    "--run-name=tiny",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    dataset_or_skip("tinyshakespeare")
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNS_DIR", str(runs))
        mp.setenv("DATASETS_OFFLINE", "1")
        cli.train(TRAIN_ARGS)
    return runs


def test_train_writes_the_run_folder(trained_run):
    folder = trained_run / "seq_models" / "tiny"
    for name in ("config.json", "metrics.jsonl", "loss.png", "checkpoints/final/meta.json"):
        assert (folder / name).is_file(), name
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss" in r for r in rows) == 6
    assert sum("val_loss" in r for r in rows) == 3  # steps 3 and 6, and the full evaluation
    meta = json.loads((folder / "checkpoints/final/meta.json").read_text())
    assert meta["dataset"] == "tinyshakespeare" and len(meta["vocab"]) == 65


def test_sample_writes_text_and_a_seed_repeats_it(trained_run, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(trained_run))
    cli.sample(["--prompt=ROMEO:", "--length=40", "--seed=3"])
    first = capsys.readouterr().out
    cli.sample(["--prompt=ROMEO:", "--length=40", "--seed=3", "--run=tiny"])
    second = capsys.readouterr().out
    assert first == second
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) >= 46


def test_eval_prints_the_validation_loss(trained_run, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(trained_run))
    monkeypatch.setenv("DATASETS_OFFLINE", "1")
    cli.evaluate(["--batch-size=64", "--seq-len=64"])
    out = capsys.readouterr().out
    assert out.startswith("val loss ") and "111,540 characters of tinyshakespeare" in out
    assert 1.5 < float(out.split()[2]) < 4.5


def test_sample_explains_unknown_characters_and_missing_runs(trained_run, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNS_DIR", str(trained_run))
    with pytest.raises(UsageError, match="not in the model's vocabulary"):
        cli.sample(["--prompt=naïve"])
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    with pytest.raises(UsageError, match="train one first"):
        cli.sample([])


def test_bad_options_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="--time_limit or --max_steps"):
        cli.train(["--time-limit=0"])
    with pytest.raises(ConfigError, match="unknown option --hidden"):
        cli.train(["--hidden=3"])
    with pytest.raises(ConfigError, match=r"--min_lr_ratio must lie in \[0, 1\], got 2.0"):
        cli.train(["--min-lr-ratio=2"])
    with pytest.raises(ConfigError, match="--temperature must be at least 0, got -1.0"):
        cli.sample(["--temperature=-1"])
    assert not any(tmp_path.iterdir())
    # a nested option by its last name alone, when only one field has it
    assert parse_config(cli.TrainConfig, ["--hidden-size=16"]).model.hidden_size == 16
