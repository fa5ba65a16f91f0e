"""`uv run --package training_kit sweep`: a hyper-parameter search with Optuna.

    uv run --package training_kit sweep --task gpt --study lr --trials 12 --time_limit=60
    uv run --package training_kit sweep --study lr --trials 20     # resumes: 8 more trials
    uv run --package training_kit sweep --study lr --space my_space.toml

Each trial is one run of the task (a run folder `runs/<stage>/<study>-NNN`, like any other)
with the options Optuna picked added to the command line. Optuna's TPE sampler proposes them:
it splits the trials so far into good and bad by their score, models each group's density
over the space, and proposes where good is likely and bad is not. Its median pruner stops a
trial whose intermediate validation loss is worse than the median of earlier trials at the
same step, so hopeless trials give their time back. The study lives in SQLite
(`runs/training_kit/sweeps/<study>/study.db`): stop it any time and the same command continues.

The search space is a TOML table, each option with its distribution:

    [space]
    lr = { log = [1e-4, 1e-2] }                # log-uniform
    weight_decay = { float = [0.0, 0.2] }      # uniform
    "model.n_layer" = { int = [2, 6] }         # integers in [2, 6]
    optimizer = { choice = ["adamw", "muon"] }

At the end (and after each trial) it writes `trials.csv`, the optimization history and the
parameters' importance (fANOVA) as PNGs into the study's folder, and prints the best trial.
"""

import csv
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import format_help, option, parse_config
from shared.errors import UsageError
from shared.paths import runs_dir
from shared.runs import Run, save_figure
from shared.tasks import load_training_task
from training_kit.options import KitOptions, split_argv

# The default spaces, for the tasks that have one; --space replaces them.
DEFAULT_SPACES: dict[str, dict[str, dict[str, list]]] = {
    "gpt": {
        "lr": {"log": [3e-4, 3e-2]},
        "muon_lr": {"log": [3e-3, 1e-1]},
        "warmup_steps": {"int": [0, 100]},
    },
}


@dataclass
class SweepOptions:
    task: str = option("gpt", "the stage whose task to tune")
    study: str | None = option(None, "the study's name (its folder and SQLite file)")
    trials: int = option(10, "trials the study should hold when done (resumed ones count)", ge=1)
    space: Path | None = option(None, "a TOML file with a [space] table (default: the task's)")
    metric: str = option("val_loss", "the evaluated metric to minimise")
    prune_after: int = option(1, "evaluations a trial runs before it may be pruned", ge=0)
    sampler_seed: int = option(0, "seed of the TPE sampler")


SWEEP_KEYS = {"task", "study", "trials", "space", "metric", "prune_after", "sampler_seed"}


def read_space(path: Path | None, task: str) -> dict[str, dict[str, list]]:
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
        kinds = set(spec) if isinstance(spec, dict) else set()
        if len(kinds) != 1 or not kinds <= {"log", "float", "int", "choice"}:
            raise UsageError(f"{path}: {name} needs one of log, float, int or choice, "
                             f"e.g. {name} = {{ log = [1e-4, 1e-2] }}")  # fmt: skip
    return space


def suggest(trial: Any, space: dict[str, dict[str, list]]) -> dict[str, Any]:
    """One value per option, drawn by Optuna from its distribution."""
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
        ax = plot_optimization_history(study)
        ax.legend(loc="upper right")  # inside the axes: Optuna puts it beyond the right edge
        ax.set_title(f"study {study.study_name}: {metric} by trial")
        save_figure(tidy(ax.figure), folder / "history.png")
    if len(complete) >= 2 and names:
        save_figure(tidy(plot_param_importances(study).figure), folder / "importance.png")


def tidy(fig: Any) -> Any:
    """Room for the long option names on the axes."""
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def sweep(argv: list[str]) -> int:
    import optuna

    from training_kit.worker import work

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
    training = load_training_task(opts.task, stage_argv, prog)  # checks the task's options
    if opts.study is None or not opts.study or "/" in opts.study:
        raise UsageError("name the study: --study NAME (a plain name; it resumes by that name)")
    space = read_space(opts.space, opts.task)
    folder = runs_dir() / "training_kit" / "sweeps" / opts.study
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{folder / 'study.db'}"
    TrialState = optuna.trial.TrialState
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    done = 0
    if (folder / "study.db").is_file():  # resuming: fail what an interrupt left running
        study = optuna.load_study(study_name=opts.study, storage=storage)
        for stale in study.get_trials(states=(TrialState.RUNNING,)):
            study._storage.set_trial_state_values(stale._trial_id, TrialState.FAIL)
        done = len(study.get_trials(states=finished))
    study = optuna.create_study(
        study_name=opts.study,
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        # A resumed study gets a new seed: the same one would propose the same trials again.
        sampler=optuna.samplers.TPESampler(seed=opts.sampler_seed + done),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=opts.prune_after),
    )
    print(f"study {opts.study}: {done} trials done, {max(0, opts.trials - done)} to go; "
          f"{folder}")  # fmt: skip

    def objective(trial: Any) -> float:
        values = suggest(trial, space)
        name = f"{opts.study}-{trial.number:03d}"
        trial_argv = [*stage_argv, *[f"--{k}={v}" for k, v in values.items()], f"--run_name={name}"]
        trial_task = load_training_task(opts.task, trial_argv, prog)
        run = Run.start(trial_task.stage, trial_task.config, name=name, quiet=True)
        trial_task.write_run_files(run.folder)
        print(f"trial {trial.number}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float)
              else f"{k}={v}" for k, v in values.items()), flush=True)  # fmt: skip

        def report(step: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[opts.metric], step)
            if trial.should_prune():
                print(f"trial {trial.number}: pruned at step {step}", flush=True)
                raise optuna.TrialPruned()

        kit = KitOptions(task=opts.task, run_folder=str(run.folder))
        result = work(kit, trial_argv, trial_task, after_evaluation=report)
        return result[opts.metric]

    def after_trial(study: Any, trial: Any) -> None:
        write_results(study, folder, opts.metric)

    remaining = max(0, opts.trials - done)
    if remaining:
        study.optimize(objective, n_trials=remaining, callbacks=[after_trial])
    write_results(study, folder, opts.metric)
    best = study.best_trial
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in best.params.items())  # fmt: skip
    print(f"best: trial {best.number}, {opts.metric} {best.value:.4f} with {shown}")
    print(f"wrote {folder}/: study.db, trials.csv, history.png, importance.png")
    del training
    return 0
