"""Config parsing: defaults, layers, ranges, leaf names, help, and one clear error per mistake."""

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
        (["--n_layers=2"], "did you mean --model.n_layer"),
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


# ----------------------------------------------------------------------------------------------
# Ranges declared on the option


@dataclass
class SamplingConfig:
    top_p: float | None = option(None, "nucleus mass", gt=0, le=1)
    temperature: float = option(0.8, "softmax temperature", ge=0)
    lr: float = option(0.1, "learning rate", gt=0)
    top_k: int = option(40, "candidates", ge=1)
    dropout: float = option(0.0, "dropout", ge=0, lt=1)
    ratio: float = option(0.5, "a fraction", le=1)
    hidden: tuple[int, ...] = option((8, 4), "layer widths", gt=0)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--top_p=1.5"], "--top_p must lie in (0, 1], got 1.5"),
        (["--top_p=0"], "--top_p must lie in (0, 1], got 0.0"),
        (["--temperature=-0.1"], "--temperature must be at least 0, got -0.1"),
        (["--lr=0"], "--lr must be positive, got 0.0"),
        (["--top-k=0"], "--top_k must be at least 1, got 0"),
        (["--dropout=1"], "--dropout must lie in [0, 1), got 1.0"),
        (["--ratio=2"], "--ratio must be at most 1, got 2.0"),
        (["--hidden=8,0"], "--hidden: each value must be positive, got 0 in 8,0"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_option_value_and_range(argv, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(SamplingConfig, argv)
    assert str(info.value) == expected


def test_values_on_the_edge_of_the_range_are_accepted():
    cfg = parse_config(SamplingConfig, ["--top_p=1", "--temperature=0", "--top_k=1", "--ratio=1"])
    assert (cfg.top_p, cfg.temperature, cfg.top_k, cfg.ratio) == (1.0, 0.0, 1, 1.0)
    assert parse_config(SamplingConfig, ["--top_p=none"]).top_p is None  # no value, no range


def test_ranges_hold_for_the_toml_file_and_a_saved_config_too(tmp_path):
    toml = tmp_path / "cfg.toml"
    toml.write_text("top_p = 2.0\n")
    with pytest.raises(ConfigError, match=r"--top_p must lie in \(0, 1\], got 2.0"):
        parse_config(SamplingConfig, [f"--config={toml}"])
    with pytest.raises(ConfigError, match="--top_k must be at least 1, got 0"):
        parse_config(SamplingConfig, [], saved={"top_k": 0})
    with pytest.raises(ConfigError, match="--lr must be positive"):
        config_from_dict(SamplingConfig, {"lr": -1.0})


def test_help_shows_each_range(capsys):
    with pytest.raises(SystemExit):
        parse_config(SamplingConfig, ["--help"])
    text = capsys.readouterr().out
    for line in [
        "nucleus mass; in (0, 1] [None]",
        "softmax temperature; at least 0 [0.8]",
        "learning rate; positive [0.1]",
        "dropout; in [0, 1) [0.0]",
        "a fraction; at most 1 [0.5]",
        "layer widths; positive [8,4]",
    ]:
        assert line in text


def test_a_bad_range_declaration_is_refused():
    with pytest.raises(TypeError, match="at most one lower bound"):
        option(1, "x", gt=0, ge=1)


def test_out_of_range_from_a_command_exits_2_with_one_line(capsys):
    """Through the dispatcher's wrapper, in-process: `error: ...` on stderr and exit code 2."""
    from shared.commands import report_errors

    code = report_errors(lambda: parse_config(SamplingConfig, ["--top-p=1.5"], prog="demo"))
    assert code == 2
    assert capsys.readouterr().err == "error: --top_p must lie in (0, 1], got 1.5\n"


# ----------------------------------------------------------------------------------------------
# Layers: defaults < saved run < --config TOML < command line


def test_each_layer_overrides_the_one_below(tmp_path):
    toml = tmp_path / "cfg.toml"
    toml.write_text("steps = 30\n[model]\ndropout = 0.3\n")
    saved = {"lr": 0.2, "steps": 20, "model": {"n_layer": 2, "dropout": 0.2}}
    argv = [f"--config={toml}", "--model.dropout=0.4"]

    assert parse_config(TrainConfig, []).lr == 3e-4  # 1. the default
    cfg = parse_config(TrainConfig, argv, saved=saved)
    assert cfg.vocab_size == 4096  # 1. a default no layer above sets
    assert cfg.lr == 0.2 and cfg.model.n_layer == 2  # 2. the saved run over the defaults
    assert cfg.steps == 30  # 3. the TOML file over the saved run
    assert cfg.model.dropout == 0.4  # 4. the command line over the TOML file


def test_a_saved_config_round_trips_and_skips_keys_this_version_lacks():
    ran = parse_config(TrainConfig, ["--model.n_layer=3", "--betas=0.5,0.6", "--out=a/b"])
    saved = config_to_dict(ran) | {"renamed_since": 1}
    assert parse_config(TrainConfig, [], saved=saved) == ran
    assert parse_config(TrainConfig, ["--steps=5"], saved=saved).steps == 5


# ----------------------------------------------------------------------------------------------
# Leaf names: --n_layer for --model.n_layer


@dataclass
class DataConfig:
    dropout: float = option(0.0, "token dropout")
    shuffle: bool = option(True, "shuffle the examples")


@dataclass
class TwoPartConfig:
    steps: int = option(10, "optimizer steps")
    model: ModelConfig = option(ModelConfig, "the network")
    data: DataConfig = option(DataConfig, "the data")


def test_a_leaf_name_with_one_owner_sets_the_nested_field():
    cfg = parse_config(TwoPartConfig, ["--n_layer=2", "--n-layer", "3", "--no-shuffle"])
    assert cfg.model.n_layer == 3 and cfg.data.shuffle is False
    assert parse_config(TrainConfig, ["--n-layer=6"]).model.n_layer == 6


def test_an_ambiguous_leaf_name_lists_the_candidates():
    with pytest.raises(ConfigError) as info:
        parse_config(TwoPartConfig, ["--dropout=0.1"])
    assert str(info.value) == "--dropout is ambiguous: --model.dropout or --data.dropout"
    cfg = parse_config(TwoPartConfig, ["--model.dropout=0.1", "--data.dropout=0.2"])
    assert (cfg.model.dropout, cfg.data.dropout) == (0.1, 0.2)


def test_an_unknown_leaf_name_still_gets_a_suggestion():
    with pytest.raises(ConfigError, match="unknown option --n_layrs for c; did you mean --model"):
        parse_config(TwoPartConfig, ["--n_layrs=2"], prog="c")
