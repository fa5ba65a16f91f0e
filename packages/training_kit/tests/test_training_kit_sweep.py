"""The sweep's parts without training: every task's default space, the grid, the direction, a
resumed study's checks, and the samplers running a made-up objective through the command's own
functions (`open_study`, `run_trials`). The real tiny study is in test_training_kit_tools.py."""

import csv
import math
from types import SimpleNamespace

import pytest

from shared.config import parse_config
from shared.errors import UsageError
from shared.fit import KeepBest
from shared.tasks import available_tasks
from training_kit import sweep as sw


def config_classes() -> dict[str, type]:
    """Each task's training config: the class its training command parses."""
    from bert.finetune import FinetuneConfig as BertFinetune
    from gpt.train import TrainConfig as GptTrain
    from seq_models.cli import TrainConfig as SeqTrain
    from t5.finetune import FinetuneConfig as T5Finetune
    from transformer.classify import ClassifyConfig
    from transformer.translate_task import TranslationConfig

    return {"gpt": GptTrain, "seq_models": SeqTrain, "transformer_sst2": ClassifyConfig,
            "transformer_translate": TranslationConfig, "bert_finetune": BertFinetune,
            "t5_finetune": T5Finetune}  # fmt: skip


def middle(kind: str, args: list):
    low, high = args[0], args[-1]
    return {"log": math.sqrt(low * high), "float": (low + high) / 2, "int": (low + high) // 2}.get(
        kind, low
    )


def test_every_task_has_a_default_space_of_its_own_options_and_a_metric_with_a_direction():
    classes = config_classes()
    assert set(sw.DEFAULT_SPACES) == set(available_tasks()) == set(classes)
    for task, space in sw.DEFAULT_SPACES.items():
        values = {name: middle(*next(iter(spec.items()))) for name, spec in space.items()}
        cfg = parse_config(classes[task], [f"--{k}={v}" for k, v in values.items()])
        for name, value in values.items():
            got = cfg
            for part in name.split("."):
                got = getattr(got, part)
            assert got == pytest.approx(value), (task, name)
    for task in sw.DEFAULT_METRICS:
        assert task in classes and sw.metric_direction(sw.DEFAULT_METRICS[task]) == "maximize"
    bert = SimpleNamespace(keep_best=KeepBest("select_matthews", "max"))
    assert sw.default_metric("bert_finetune", bert) == "select_matthews"
    assert sw.default_metric("gpt", SimpleNamespace(keep_best=None)) == "val_loss"


@pytest.mark.parametrize(
    ("metric", "asked", "direction"),
    [("val_loss", None, "minimize"), ("select_accuracy", None, "maximize"),
     ("val_bleu", None, "maximize"), ("select_pearson", None, "maximize"),
     ("select_score", None, "maximize"), ("val_perplexity", None, "minimize"),
     ("val_loss", "maximize", "maximize"), ("tokens_per_second", "minimize", "minimize")],
)  # fmt: skip
def test_the_direction_follows_the_metric_unless_asked(metric, asked, direction):
    assert sw.metric_direction(metric, asked) == direction


def test_a_metric_of_unknown_direction_asks_for_one():
    with pytest.raises(UsageError, match="--direction maximize") as error:
        sw.metric_direction("tokens_per_second")
    assert "\n" not in str(error.value)


def test_the_grid_takes_listed_values_and_small_int_ranges(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('[space]\nlr = { grid = [1e-3, 3e-3] }\n"model.n_layer" = { int = [2, 4] }\n'
                    'optimizer = { choice = ["adamw", "muon"] }\n')  # fmt: skip
    space = sw.read_space(path, "gpt")
    assert sw.grid_values(space) == {"lr": [1e-3, 3e-3], "model.n_layer": [2, 3, 4],
                                     "optimizer": ["adamw", "muon"]}  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "says"),
    [({"lr": {"log": [1e-4, 1e-2]}}, "lr = { grid = [0.0001, 0.01] }"),
     ({"model.dropout": {"float": [0.0, 0.3]}}, '"model.dropout" = { grid = [0.0, 0.3] }'),
     ({"warmup_steps": {"int": [0, 100]}}, "warmup_steps is an int range [0, 100]")],
)  # fmt: skip
def test_a_range_cannot_be_gridded_and_the_error_says_how_to_list_it(spec, says):
    with pytest.raises(UsageError, match="--sampler grid tries listed values") as error:
        sw.grid_values(spec)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_space_entry_without_a_known_kind_is_refused(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text("[space]\nlr = { range = [1, 2] }\n")
    with pytest.raises(UsageError, match="lr needs one of log, float, int, choice, grid"):
        sw.read_space(path, "gpt")


def rows(folder):
    with open(folder / "trials.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_grid_tries_each_point_once_then_stops_and_the_best_is_the_highest(tmp_path, capsys):
    space = {"x": {"grid": [1, 3]}, "y": {"int": [0, 1]}}

    def score(trial):
        values = sw.suggest(trial, space)
        return 10 * values["x"] + values["y"]

    study, done = sw.open_study(tmp_path, "g", "score", "maximize", "grid", space)
    sw.run_trials(study, score, 50, done, tmp_path, "score")  # 50 asked, 4 points
    found = rows(tmp_path)
    assert sorted((r["x"], r["y"]) for r in found) == [(x, y) for x in "13" for y in "01"]
    out = capsys.readouterr().out
    assert "the grid is done" in out and "best: trial" in out and "score 31.0000 (highest)" in out
    study, done = sw.open_study(tmp_path, "g", "score", "maximize", "grid", space)  # resumed
    sw.run_trials(study, score, 50, done, tmp_path, "score")
    assert "4 trials done, 0 to go" in capsys.readouterr().out and len(rows(tmp_path)) == 4


def test_an_interrupted_grid_point_is_tried_again(tmp_path, capsys):
    space = {"x": {"grid": [1, 2, 3]}}

    def value(trial):
        return sw.suggest(trial, space)["x"]

    study, done = sw.open_study(tmp_path, "i", "val_loss", "minimize", "grid", space)
    sw.run_trials(study, value, 1, done, tmp_path, "val_loss")
    value(study.ask())  # left RUNNING, as a killed process leaves its trial
    study, done = sw.open_study(tmp_path, "i", "val_loss", "minimize", "grid", space)
    sw.run_trials(study, value, 10, done, tmp_path, "val_loss")
    found = rows(tmp_path)
    assert sorted(r["x"] for r in found if r["state"] == "COMPLETE") == ["1", "2", "3"]
    assert [r["state"] for r in found].count("FAIL") == 1


def test_random_draws_the_same_with_the_same_seed_and_the_best_follows_the_direction(tmp_path):
    space = {"x": {"float": [0.0, 1.0]}}
    draws = {}
    for direction in ("maximize", "minimize"):
        folder = tmp_path / direction
        folder.mkdir()
        study, done = sw.open_study(folder, "r", "val_acc", direction, "random", space, seed=3)
        sw.run_trials(study, lambda t: sw.suggest(t, space)["x"], 4, done, folder, "val_acc")
        draws[direction] = [t.value for t in study.trials]
        pick = max if direction == "maximize" else min
        assert study.best_value == pick(draws[direction])
        assert (folder / "history.png").is_file()
    assert draws["maximize"] == draws["minimize"] and len(set(draws["maximize"])) == 4


@pytest.mark.parametrize(
    ("metric", "direction"), [("val_loss", "maximize"), ("select_accuracy", "maximize")]
)
def test_a_resumed_study_keeps_its_metric_and_direction(tmp_path, metric, direction):
    space = {"lr": {"log": [1e-4, 1e-2]}}
    sw.open_study(tmp_path, "s", "val_loss", "minimize", "tpe", space)
    with pytest.raises(UsageError, match="was made to minimize val_loss") as error:
        sw.open_study(tmp_path, "s", metric, direction, "tpe", space)
    assert "--metric val_loss --direction minimize" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_metric_the_evaluation_lacks_names_those_it_has():
    with pytest.raises(UsageError, match="reported dev_accuracy, dev_loss, not select_accuracy"):
        sw.evaluated({"dev_loss": 0.5, "dev_accuracy": 0.8}, "select_accuracy")
