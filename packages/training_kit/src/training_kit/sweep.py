"""`uv run --package training_kit sweep`: a hyper-parameter search with Optuna.

    uv run --package training_kit sweep --task gpt --study lr --trials 12 --time_limit=60
    uv run --package training_kit sweep --study lr --trials 20     # resumes: 8 more trials
    uv run --package training_kit sweep --study lr --space my_space.toml --sampler grid
    uv run --package training_kit sweep --task transformer_sst2 --study sst2 --trials 8

Each trial is one run of the task (a run folder `runs/<stage>/<study>-NNN`, like any other)
with the options Optuna picked added to the command line. `--sampler` says who picks them:

- `tpe` (the default): Optuna's Tree-structured Parzen Estimator splits the trials so far into
  good and bad by their score, models each group's density over the space, and proposes where
  good is likely and bad is not. It learns from the trials, so it beats chance after a few.
- `random`: every option drawn independently from its distribution. It learns nothing, which
  makes it the baseline a smarter sampler must beat, and it needs no warm-up trials.
- `grid`: every combination of listed values, each tried once, in a seeded shuffled order; the
  study stops when the grid is exhausted, whatever `--trials` says. A grid needs finite lists:
  a `log` or `float` range has infinitely many points, so the space must list them
  (`lr = { grid = [1e-3, 3e-3] }`); an `int` range of at most 16 values is expanded.

The metric is optimised in the direction its name implies (accuracy, BLEU, F1, correlations,
scores: maximise; losses, perplexity: minimise), or as `--direction` says. A median pruner
stops a trial whose intermediate metric is worse (in that direction) than the median of earlier
trials at the same step, so hopeless trials give their time back. The study lives in SQLite
(`runs/training_kit/sweeps/<study>/study.db`): stop it any time and the same command continues
(a grid comes back to the point it was interrupted at).

The search space is a TOML table, each option with its distribution:

    [space]
    lr = { log = [1e-4, 1e-2] }                # log-uniform
    weight_decay = { float = [0.0, 0.2] }      # uniform
    "model.n_layer" = { int = [2, 6] }         # integers in [2, 6]
    optimizer = { choice = ["adamw", "muon"] }
    warmup_steps = { grid = [0, 50, 100] }     # listed values (tpe, random: like a choice)

Every task the kit offers has a default space (`DEFAULT_SPACES`) and a default metric. At the
end (and after each trial) it writes `trials.csv`, the optimization history and the
parameters' importance (fANOVA) as PNGs into the study's folder, and prints the best trial.
"""

import csv
import logging
import re
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared.config import format_help, option, parse_config
from shared.errors import UsageError
from shared.paths import runs_dir
from shared.runs import Run, save_figure
from shared.tasks import TrainingTask, load_training_task
from training_kit.options import KitOptions, split_argv

Space = dict[str, dict[str, list]]

# A small default space for every task the kit offers, of options its training command has;
# --space replaces it. Learning rates span about a decade around the stage's default.
DEFAULT_SPACES: dict[str, Space] = {
    "gpt": {
        "lr": {"log": [3e-4, 3e-2]},
        "muon_lr": {"log": [3e-3, 1e-1]},
        "warmup_steps": {"int": [0, 100]},
    },
    "seq_models": {
        "lr": {"log": [1e-3, 1e-2]},
        "warmup_steps": {"int": [0, 50]},
        "model.dropout": {"float": [0.0, 0.3]},
    },
    "transformer_sst2": {
        "lr": {"log": [2e-4, 3e-3]},
        "weight_decay": {"float": [0.0, 0.1]},
        "model.dropout": {"float": [0.0, 0.3]},
    },
    "transformer_translate": {
        "lr": {"log": [2e-4, 2e-3]},
        "model.dropout": {"float": [0.0, 0.3]},
        "label_smoothing": {"float": [0.0, 0.2]},
    },
    "bert_finetune": {
        "lr": {"log": [2e-5, 3e-4]},
        "warmup_steps": {"int": [0, 300]},
        "dropout": {"float": [0.0, 0.2]},
    },
    "t5_finetune": {  # the lr range suits Adafactor, t5's default optimizer
        "lr": {"log": [3e-3, 5e-2]},
        "warmup_steps": {"int": [0, 800]},
        "model.dropout": {"float": [0.0, 0.2]},
    },
}

# What each task is judged by, where that is not val_loss: the held-out slice of the training
# rows where there is one (tuning on dev would fit the reported figure). bert_finetune's depends
# on its GLUE task (accuracy, matthews, pearson...): the metric it keeps checkpoints by.
DEFAULT_METRICS = {
    "transformer_sst2": "select_accuracy",
    "transformer_translate": "val_bleu",
    "t5_finetune": "select_score",
}

# Words in a metric's name that say which way is better.
MAXIMIZED = ("accuracy", "acc", "bleu", "f1", "matthews", "pearson", "spearman", "pass", "score")
MINIMIZED = ("loss", "perplexity")
GRID_INT_LIMIT = 16  # an int range with at most this many values may be gridded as it is
KINDS = ("log", "float", "int", "choice", "grid")


@dataclass
class SweepOptions:
    task: str = option("gpt", "the stage whose task to tune")
    study: str | None = option(None, "the study's name (its folder and SQLite file)")
    trials: int = option(10, "trials the study should hold when done (resumed ones count)", ge=1)
    space: Path | None = option(None, "a TOML file with a [space] table (default: the task's)")
    sampler: Literal["tpe", "random", "grid"] = option("tpe", "who proposes each trial's options")
    metric: str | None = option(None, "the evaluated metric to optimise (default: the task's)")
    direction: Literal["maximize", "minimize"] | None = option(
        None, "maximize or minimize the metric (default: as its name says)"
    )
    prune_after: int = option(1, "evaluations a trial runs before it may be pruned", ge=0)
    sampler_seed: int = option(0, "seed of the sampler")


SWEEP_KEYS = {"task", "study", "trials", "space", "sampler", "metric", "direction",
              "prune_after", "sampler_seed"}  # fmt: skip


def read_space(path: Path | None, task: str) -> Space:
    """The search space: `path`'s [space] table, else the task's default."""
    if path is None:
        if task not in DEFAULT_SPACES:
            raise UsageError(f"no default search space for {task}: give one with --space FILE")
        return DEFAULT_SPACES[task]
    try:
        space = tomllib.loads(path.read_text(encoding="utf-8")).get("space")
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read --space {path}: {error}") from None
    if not space:
        raise UsageError(f"{path} has no [space] table (see `sweep --help`)")
    for name, spec in space.items():
        one = isinstance(spec, dict) and len(spec) == 1
        kind, args = next(iter(spec.items())) if one else (None, None)
        if kind not in KINDS or not isinstance(args, list) or not args:
            raise UsageError(f"{path}: {name} needs one of {', '.join(KINDS)}, "
                             f"e.g. {name} = {{ log = [1e-4, 1e-2] }}")  # fmt: skip
        if kind in ("log", "float", "int") and len(args) != 2:
            raise UsageError(f"{path}: {name}'s {kind} range needs [low, high], got {args}")
    return space


def toml_key(name: str) -> str:
    """`name` as a TOML key: dotted names ("model.dropout") need quotes."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def grid_values(space: Space) -> dict[str, list]:
    """Every option's listed values, for Optuna's GridSampler: a grid is finite, so a `log` or
    `float` range (infinitely many points) must be written as a list of the points to try."""
    grid = {}
    for name, spec in space.items():
        (kind, args), *_ = spec.items()
        if kind in ("choice", "grid"):
            grid[name] = list(args)
        elif kind == "int" and args[1] - args[0] < GRID_INT_LIMIT:
            grid[name] = list(range(args[0], args[1] + 1))
        else:
            low, high = args
            a = "an" if kind == "int" else "a"
            raise UsageError(
                f"--sampler grid tries listed values, and {name} is {a} {kind} range "
                f"[{low}, {high}]: list the points in a --space file, e.g. "
                f"{toml_key(name)} = {{ grid = [{low}, {high}] }}"
            )
    return grid


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """One value per option, drawn by Optuna from its distribution (a grid's listed values are
    a choice: the grid sampler hands out its points through the same call)."""
    values = {}
    for name, spec in space.items():
        (kind, args), *_ = spec.items()
        if kind == "log":
            values[name] = trial.suggest_float(name, args[0], args[1], log=True)
        elif kind == "float":
            values[name] = trial.suggest_float(name, args[0], args[1])
        elif kind == "int":
            values[name] = trial.suggest_int(name, args[0], args[1])
        else:
            values[name] = trial.suggest_categorical(name, args)
    return values


def metric_direction(metric: str, asked: str | None = None) -> str:
    """The study's direction, "maximize" or "minimize": as asked, else as the metric's name
    says. A name that says neither (or both) is not guessed: optimising the wrong way is a
    silent, costly mistake."""
    if asked is not None:
        return asked
    name = metric.lower()
    up, down = any(w in name for w in MAXIMIZED), any(w in name for w in MINIMIZED)
    if up != down:
        return "maximize" if up else "minimize"
    raise UsageError(f"is a higher {metric} better or worse? say --direction maximize "
                     "or --direction minimize")  # fmt: skip


def default_metric(task: str, training: TrainingTask) -> str:
    """The metric a task is tuned by unless --metric says: DEFAULT_METRICS', else the one the
    task keeps its best checkpoint by, else val_loss."""
    if task in DEFAULT_METRICS:
        return DEFAULT_METRICS[task]
    if training.keep_best is not None:
        return training.keep_best.metric
    return "val_loss"


def evaluated(metrics: dict[str, float], metric: str) -> float:
    """`metric` from a trial's evaluation; if it has none, what it did report."""
    if metric not in metrics:
        shown = ", ".join(sorted(metrics)) or "nothing"
        raise UsageError(f"the trial's evaluation reported {shown}, not {metric}: "
                         "choose one of those with --metric")  # fmt: skip
    return metrics[metric]


def make_sampler(kind: str, space: Space, seed: int, done: int) -> Any:
    """Optuna's sampler of that kind. A resumed tpe or random study gets a new seed (the same
    one would propose the same trials again); a grid keeps its seed, which fixes the order of
    its points, since the grid counts the points done by their place in that order."""
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed + done)
    return optuna.samplers.TPESampler(seed=seed + done)


def open_study(
    folder: Path, name: str, metric: str, direction: str, sampler_kind: str, space: Space,
    seed: int = 0, prune_after: int = 1,
) -> tuple[Any, int]:  # fmt: skip
    """(the study, its trials done): new, or the one in `folder`, which must optimise the same
    metric the same way. Trials an interrupt left running are failed (a grid's point is kept
    to be tried again)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{folder / 'study.db'}"
    TrialState = optuna.trial.TrialState
    done = 0
    if (folder / "study.db").is_file():
        study = optuna.load_study(study_name=name, storage=storage)
        check_resumed(study, metric, direction)
        for stale in study.get_trials(states=(TrialState.RUNNING,)):
            # GridSampler counts every finished trial as a point tried: hide this one's point
            # from it, and the grid comes back to that point; other samplers ignore the note.
            study._storage.set_trial_system_attr(stale._trial_id, "search_space", {})
            study._storage.set_trial_state_values(stale._trial_id, TrialState.FAIL)
        done = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction=direction,
        sampler=make_sampler(sampler_kind, space, seed, done),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=prune_after),
    )
    study.set_user_attr("metric", metric)
    return study, done


def check_resumed(study: Any, metric: str, direction: str) -> None:
    """A stored study keeps its direction (Optuna would silently ignore a new one) and its
    metric: trials scored another way cannot be compared with the new ones."""
    stored = study.direction.name.lower()
    stored_metric = study.user_attrs.get("metric", metric)
    if stored != direction or stored_metric != metric:
        raise UsageError(f"study {study.study_name} was made to {stored} {stored_metric}, not to "
                         f"{direction} {metric}: name a new --study, or give --metric "
                         f"{stored_metric} --direction {stored}")  # fmt: skip


def not_a_usage_error(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial's traceback before it re-raises the error; a UsageError is
    the command's one-line message (exit 2), so its traceback is left out of the log."""
    return not (record.exc_info and isinstance(record.exc_info[1], UsageError))


def shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())  # fmt: skip


def make_objective(
    task: str, study: str, stage_argv: list[str], space: Space, metric: str, prog: str
) -> Callable[[Any], float]:
    """Optuna's objective: one run of the task with the trial's options, reporting `metric` at
    every evaluation so the pruner can stop it, and returning its last value."""
    import optuna

    from training_kit.worker import work

    def objective(trial: Any) -> float:
        values = suggest(trial, space)
        name = f"{study}-{trial.number:03d}"
        trial_argv = [*stage_argv, *[f"--{k}={v}" for k, v in values.items()], f"--run_name={name}"]
        trial_task = load_training_task(task, trial_argv, prog)
        run = Run.start(trial_task.stage, trial_task.config, name=name, quiet=True)
        trial_task.write_run_files(run.folder)
        print(f"trial {trial.number}: {shown(values)}", flush=True)

        def report(step: int, metrics: dict[str, float]) -> None:
            trial.report(evaluated(metrics, metric), step)
            if trial.should_prune():
                print(f"trial {trial.number}: pruned at step {step}", flush=True)
                raise optuna.TrialPruned()

        kit = KitOptions(task=task, run_folder=str(run.folder))
        return evaluated(work(kit, trial_argv, trial_task, after_evaluation=report), metric)

    return objective


def run_trials(
    study: Any, objective: Callable[[Any], float], trials: int, done: int, folder: Path,
    metric: str,
) -> None:  # fmt: skip
    """Run the study until it holds `trials` finished trials (or its grid is exhausted: the
    GridSampler stops the study itself), rewriting the results after each; print the best."""
    import optuna

    grid = study.sampler if isinstance(study.sampler, optuna.samplers.GridSampler) else None
    remaining = max(0, trials - done)
    if grid is not None and grid.is_exhausted(study):
        remaining = 0  # another trial would only repeat a point
    print(f"study {study.study_name}: {done} trials done, {remaining} to go; {folder}", flush=True)

    def after_trial(study: Any, trial: Any) -> None:
        write_results(study, folder, metric)

    if remaining:
        study.optimize(objective, n_trials=remaining, callbacks=[after_trial])
    write_results(study, folder, metric)
    if grid is not None and grid.is_exhausted(study):
        print("the grid is done: every point has been tried, and more --trials add none")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        print("no trial completed (each was pruned or failed): no best to show")
        return
    best = study.best_trial  # the highest value or the lowest, as the study's direction says
    how = "highest" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "lowest"
    print(f"best: trial {best.number}, {metric} {best.value:.4f} ({how}) with {shown(best.params)}")


def split_sweep_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the sweep's options, the task's): by name, as `train` splits the kit's from the task's."""
    ours, rest = [], []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        key = token[2:].partition("=")[0].replace("-", "_")
        if token.startswith("--") and key in SWEEP_KEYS:
            ours.append(token)
            if "=" not in token and i < len(argv) and not argv[i].startswith("--"):
                ours.append(argv[i])
                i += 1
        else:
            rest.append(token)
    return ours, rest


def write_results(study: Any, folder: Path, metric: str) -> None:
    """trials.csv and the two plots, rewritten after every trial."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    # Optuna marks its matplotlib plots "experimental"; they are what we want all the same.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    tmp = folder / ".trials.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["trial", "state", metric, *names])
        for t in trials:
            writer.writerow([t.number, t.state.name, t.value, *[t.params.get(n) for n in names]])
    tmp.replace(folder / "trials.csv")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        ax = plot_optimization_history(study)  # its "best value" line follows the direction
        ax.legend(loc="upper right")  # inside the axes: Optuna puts it beyond the right edge
        better = "higher" if study.direction.name == "MAXIMIZE" else "lower"
        ax.set_title(f"study {study.study_name}: {metric} by trial ({better} is better)")
        save_figure(tidy(ax.figure), folder / "history.png")
    if len(complete) >= 2 and names:
        save_figure(tidy(plot_param_importances(study).figure), folder / "importance.png")


def tidy(fig: Any) -> Any:
    """Room for the long option names on the axes."""
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def sweep(argv: list[str]) -> int:
    """`training_kit sweep`: the cheap checks first (names, the space, the grid), then the
    task's options, then the study, new or resumed."""
    prog = "training_kit sweep"
    if "-h" in argv or "--help" in argv:
        print(format_help(SweepOptions, prog, __doc__.split("\n\n")[0]))
        print("\nand the task's own options, as `training_kit train --help` lists them")
        raise SystemExit(0)
    ours, rest = split_sweep_argv(argv)
    opts = parse_config(SweepOptions, ours, prog=prog)
    kit_argv, stage_argv = split_argv(rest)
    if kit_argv:
        raise UsageError(f"sweep runs each trial in one process: drop {kit_argv[0]}")
    space = read_space(opts.space, opts.task)
    if opts.sampler == "grid":
        grid_values(space)  # a range that cannot be gridded: said before any work
    if opts.metric is not None:
        metric_direction(opts.metric, opts.direction)  # a metric of unknown direction: too
    training = load_training_task(opts.task, stage_argv, prog)  # checks the task's options
    if opts.study is None or not opts.study or "/" in opts.study:
        raise UsageError("name the study: --study NAME (a plain name; it resumes by that name)")
    metric = opts.metric or default_metric(opts.task, training)
    direction = metric_direction(metric, opts.direction)
    folder = runs_dir() / "training_kit" / "sweeps" / opts.study
    folder.mkdir(parents=True, exist_ok=True)
    study, done = open_study(folder, opts.study, metric, direction, opts.sampler, space,
                             opts.sampler_seed, opts.prune_after)  # fmt: skip
    for handler in logging.getLogger("optuna").handlers:
        handler.addFilter(not_a_usage_error)
    objective = make_objective(opts.task, opts.study, stage_argv, space, metric, prog)
    run_trials(study, objective, opts.trials, done, folder, metric)
    print(f"wrote {folder}/: study.db, trials.csv, history.png, importance.png")
    return 0
