"""Config parsing: defaults, overrides, TOML, help, and one clear error for each mistake."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from shared.config import (
    config_from_dict,
    config_to_dict,
    format_config,
    format_help,
    option,
    parse_config,
)
from shared.errors import ConfigError


@dataclass
class ModelConfig:
    n_layer: int = option(4, "number of transformer blocks")
    dropout: float = option(0.0, "dropout probability")


@dataclass
class TrainConfig:
    lr: float = option(3e-4, "peak learning rate")
    steps: int = option(100, "optimizer steps")
    vocab_size: int = option(4096, "tokenizer vocabulary size")
    compile: bool = option(False, "use torch.compile")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "where to train")
    out: Path = option(Path("runs"), "output folder")
    run_name: str | None = option(None, "name of the run folder")
    betas: tuple[float, ...] = option((0.9, 0.95), "AdamW betas")
    model: ModelConfig = option(ModelConfig, "the network")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")


def test_defaults_when_no_arguments():
    cfg = parse_config(TrainConfig, [])
    assert cfg == TrainConfig()
    assert cfg.model.n_layer == 4 and cfg.betas == (0.9, 0.95)


def test_overrides_in_every_spelling():
    cfg = parse_config(
        TrainConfig,
        [
            "--lr=1e-3",
            "--steps",
            "7",
            "--vocab-size=512",
            "--compile",
            "--device=cpu",
            "--model.n_layer=2",
            "--betas=0.8,0.99",
            "--run_name=x",
            "--out",
            "elsewhere",
        ],
    )
    assert cfg.lr == 1e-3 and cfg.steps == 7 and cfg.vocab_size == 512 and cfg.compile is True
    assert cfg.device == "cpu" and cfg.model.n_layer == 2 and cfg.betas == (0.8, 0.99)
    assert cfg.run_name == "x" and cfg.out == Path("elsewhere")


def test_empty_list_from_the_command_line():
    assert parse_config(TrainConfig, ["--betas="]).betas == ()


def test_bool_forms():
    assert parse_config(TrainConfig, ["--compile=false"]).compile is False
    assert parse_config(TrainConfig, ["--compile", "--lr=1"]).compile is True
    assert parse_config(TrainConfig, ["--compile", "--no-compile"]).compile is False


def test_toml_then_command_line(tmp_path):
    toml = tmp_path / "cfg.toml"
    toml.write_text('lr = 0.01\nsteps = 5\ndevice = "cpu"\n[model]\nn_layer = 8\ndropout = 0.1\n')
    cfg = parse_config(TrainConfig, ["--steps=9", "--config", str(toml)])
    assert cfg.lr == 0.01 and cfg.device == "cpu"
    assert cfg.steps == 9  # the command line wins over the file, wherever --config appears
    assert cfg.model == ModelConfig(n_layer=8, dropout=0.1)


def test_round_trip_through_dict():
    cfg = parse_config(TrainConfig, ["--model.n_layer=3", "--out=a/b", "--betas=0.5,0.6"])
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--lrr=1"], "unknown option --lrr for train; did you mean --lr?"),
        (["--n_layer=2"], "did you mean --model.n_layer"),
        (["--steps=many"], "--steps expects an integer, got 'many'"),
        (["--lr=fast"], "--lr expects a number, got 'fast'"),
        (["--device=gpu"], "--device expects one of 'auto', 'cpu', 'cuda', got 'gpu'"),
        (["--compile=maybe"], "--compile expects true or false, got 'maybe'"),
        (["--steps=0"], "--steps must be at least 1, got 0"),
        (["--steps"], "--steps needs a value"),
        (["stray"], "train takes no bare arguments, got 'stray'"),
        (["--config=/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
    ],
)
def test_mistakes_name_the_field(argv, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(TrainConfig, argv, prog="train")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_toml_mistakes(tmp_path):
    bad_key = tmp_path / "a.toml"
    bad_key.write_text("[model]\nn_layers = 2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.n_layers' in .*model.n_layer"):
        parse_config(TrainConfig, [f"--config={bad_key}"])
    bad_type = tmp_path / "b.toml"
    bad_type.write_text('steps = "ten"\n')
    with pytest.raises(ConfigError, match="--steps expects an integer"):
        parse_config(TrainConfig, [f"--config={bad_type}"])
    broken = tmp_path / "c.toml"
    broken.write_text("steps = = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        parse_config(TrainConfig, [f"--config={broken}"])


def test_help_lists_every_field_with_default_and_doc(capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(TrainConfig, ["--help"], prog="gpt train", description="Train a GPT.")
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: gpt train")
    for key, doc, default in [
        ("--lr=FLOAT", "peak learning rate", "[0.0003]"),
        ("--model.n_layer=INT", "number of transformer blocks", "[4]"),
        ("--device={auto,cpu,cuda}", "where to train", "[auto]"),
        ("--betas=FLOAT,...", "AdamW betas", "[0.9,0.95]"),
    ]:
        line = next(line for line in text.splitlines() if key in line or doc in line)
        assert doc in text and default in text, line
    assert format_help(TrainConfig, "x") in text or "Train a GPT." in text


def test_positional_field():
    @dataclass
    class EncodeConfig:
        text: str = option("", "text to encode", positional=True)
        kind: str = option("bpe", "tokenizer")

    assert parse_config(EncodeConfig, ["some", "text", "--kind=char"]).text == "some text"


def test_format_config_shows_nested_keys():
    text = format_config(TrainConfig())
    assert "model.n_layer = 4" in text.replace("  ", " ").replace("  ", " ")


def test_bad_key_from_a_command_exits_2_with_one_line(tmp_path):
    """The dispatcher's contract: a ConfigError becomes `error: ...` on stderr and exit code 2."""
    script = (
        "import sys\n"
        "from dataclasses import dataclass\n"
        "from shared.config import option, parse_config\n"
        "from shared.commands import report_errors\n"
        "@dataclass\n"
        "class C:\n"
        "    lr: float = option(0.1, 'learning rate')\n"
        "sys.exit(report_errors(lambda: parse_config(C, ['--lrr=2'], prog='demo train')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown option --lrr for demo train; did you mean --lr?"
    ]
