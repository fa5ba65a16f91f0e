"""The learner's path: the `exercise` verb of every stage, and `learn`, the progress table.

    uv run --package micrograd exercise list       # one exercise a line: number, title, status
    uv run --package micrograd exercise start 1    # write the skeleton to exercises/micrograd/
    uv run --package micrograd exercise check 1    # compare it with the stage's own code
    uv run --package micrograd exercise hint 1     # | solution 1 | reset 1
    uv run learn                                   # every stage: passed of total, finished

The learner's files live in `exercises/<stage>/` at the repository root (git-ignored, never inside
packages/, so the reference is never touched), and the results of the checks in
`exercises/progress.json`. `$EXERCISES_DIR` moves both. A stage offers exercises by listing them
as `EXERCISES` in its module `<stage>/exercises.py` and registering that module's `exercise`
function as its `exercise` command; `learn` finds them through the same entry points.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from shared.atomic import write_text_atomic
from shared.errors import UsageError
from shared.exercises import Exercise, check_file, skeleton, solution
from shared.paths import exercises_dir

# The stage order of the README and ARCHITECTURE.md: the order a learner walks them.
STAGE_ORDER = (
    "shared",
    "micrograd",
    "mlp",
    "seq_models",
    "attention",
    "transformer",
    "tokenizers_fromscratch",
    "gpt",
    "bert",
    "t5",
    "training_kit",
)


# ----------------------------------------------------------------------------------------------
# Progress: exercises/progress.json, {stage: {slug: {"passed": bool, "checked": iso time}}}


def progress_path() -> Path:
    return exercises_dir() / "progress.json"


def load_progress() -> dict[str, dict[str, dict]]:
    path = progress_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(
            f"cannot read {path} ({error}); delete it to start the record anew"
        ) from None
    return data.get("stages", {}) if isinstance(data, dict) else {}


def record(stage: str, slug: str, passed: bool) -> None:
    """Remember the result of one check (written whole, then renamed over the old file)."""
    stages = load_progress()
    checked = datetime.now().isoformat(timespec="seconds")
    stages.setdefault(stage, {})[slug] = {"passed": passed, "checked": checked}
    write_text_atomic(progress_path(), json.dumps({"stages": stages}, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------
# The exercise verb


def forget(stage: str, slug: str) -> None:
    """Drop one exercise's result (after `reset`, the old verdict no longer describes the file)."""
    stages = load_progress()
    if stages.get(stage, {}).pop(slug, None) is not None:
        write_text_atomic(progress_path(), json.dumps({"stages": stages}, indent=2) + "\n")


def _write_learner_file(path: Path, text: str) -> None:
    """Atomically, and readable like any file the learner makes (mkstemp's would be 0600)."""
    write_text_atomic(path, text)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _free_backup_name(path: Path) -> Path:
    """`01_mul.py.<time>.bak`, with a counter if two resets fall in one second: never overwrite."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    for n in range(1000):
        backup = path.with_name(f"{path.name}.{stamp}{f'-{n}' if n else ''}.bak")
        if not backup.exists():
            return backup
    raise UsageError(f"too many backups of {path} this second; try again")


def exercise_file(stage: str, number: int, exercise: Exercise) -> Path:
    return exercises_dir() / stage / f"{number:02d}_{exercise.slug}.py"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `{self.prog} --help`")


def _parser(stage: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"uv run --package {stage} exercise",
        description=f"Write {stage}'s central pieces yourself; the stage's own code checks them.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    verbs.add_parser("list", help="one exercise a line: number, title, status")
    for verb, help_text in [
        ("start", "write the skeleton to exercises/<stage>/"),
        ("hint", "print the hint"),
        ("solution", "print the stage's own code for the piece"),
        ("reset", "put the skeleton back (your file is kept as .bak)"),
    ]:
        verbs.add_parser(verb, help=help_text).add_argument("number", type=int)
    check = verbs.add_parser("check", help="compare your code with the stage's (all when no N)")
    check.add_argument("numbers", type=int, nargs="*")
    return parser


def _pick(stage: str, exercises: Sequence[Exercise], number: int) -> Exercise:
    if not 1 <= number <= len(exercises):
        raise UsageError(
            f"{stage} has no exercise {number}: it has 1-{len(exercises)}; "
            f"`uv run --package {stage} exercise list` shows them"
        )
    return exercises[number - 1]


def status(stage: str, number: int, exercise: Exercise, progress: dict) -> str:
    """'passed <time>', 'failed <time>', 'started' or 'not started'."""
    result = progress.get(stage, {}).get(exercise.slug)
    if result is not None:
        return ("passed " if result["passed"] else "failed ") + result["checked"].replace("T", " ")
    return "started" if exercise_file(stage, number, exercise).is_file() else "not started"


def exercise_command(stage: str, exercises: Sequence[Exercise], argv: list[str]) -> int:
    """Run `exercise VERB ...` for one stage; returns the exit code (0 pass, 1 fail)."""
    args = _parser(stage).parse_args(argv)
    command = f"uv run --package {stage} exercise"

    if args.verb == "list":
        progress = load_progress()
        width = max(len(e.title) for e in exercises)
        for number, exercise in enumerate(exercises, 1):
            state = status(stage, number, exercise, progress)
            print(f"{number:>2}  {exercise.title:<{width}}  {state}")
        return 0

    if args.verb == "check":
        numbers = args.numbers or range(1, len(exercises) + 1)
        chosen = [(n, _pick(stage, exercises, n)) for n in numbers]
        failed = 0
        for number, exercise in chosen:
            path = exercise_file(stage, number, exercise)
            print(f"exercise {number}: {exercise.title}")
            if not path.is_file():
                print(f"  not started: `{command} start {number}` writes {_relative(path)}")
                failed += 1
                continue
            result = check_file(exercise, path)
            print("  " + result.message.replace("\n", "\n  "), flush=True)
            record(stage, exercise.slug, result.passed)
            failed += not result.passed
        if len(chosen) > 1:
            print(f"{len(chosen) - failed} of {len(chosen)} passed")
        return 1 if failed else 0

    exercise = _pick(stage, exercises, args.number)
    path = exercise_file(stage, args.number, exercise)
    if args.verb == "hint":
        print(exercise.hint.strip())
    elif args.verb == "solution":
        print(solution(exercise), end="")
    elif args.verb == "start":
        if path.exists():
            raise UsageError(
                f"{_relative(path)} exists already: edit it, or `{command} reset {args.number}` "
                "to start again from the skeleton"
            )
        _write_learner_file(path, skeleton(exercise, args.number, stage))
        print(f"wrote {_relative(path)}: write `{exercise.name}` there, then run")
        print(f"  {command} check {args.number}")
    elif args.verb == "reset":
        text = skeleton(exercise, args.number, stage)
        if path.exists() and path.read_text(encoding="utf-8") != text:
            backup = _free_backup_name(path)
            path.replace(backup)
            print(f"kept your version as {_relative(backup)}")
        _write_learner_file(path, text)
        forget(stage, exercise.slug)
        print(f"wrote the skeleton to {_relative(path)}")
    return 0


# ----------------------------------------------------------------------------------------------
# learn: the whole path at a glance


def installed_exercises() -> dict[str, Sequence[Exercise]]:
    """{stage: its EXERCISES} for every installed stage with an `exercise` command, in order."""
    from shared.commands import available

    table = {
        stage: importlib.import_module(commands["exercise"].module).EXERCISES
        for stage, commands in available("exercise").items()
    }
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return dict(sorted(table.items(), key=lambda item: (rank.get(item[0], 99), item[0])))


def progress_table(all_exercises: dict[str, Sequence[Exercise]], progress: dict) -> str:
    """The table `learn` prints: a row a stage, then the next exercise to do.

    The path starts at stage 1: shared's exercises (stage 0, the plumbing) are there for the
    curious, so "next" points at them only once every other stage is finished.
    """
    rows = [f"{'#':>2}  {'stage':<24}{'passed':>8}  {'last check':<17}"]
    next_steps: dict[str, str] = {}  # each unfinished stage's next command, in stage order
    for stage, exercises in all_exercises.items():
        results = progress.get(stage, {})
        passed_slugs = {slug for slug, r in results.items() if r.get("passed")}
        passed = sum(1 for e in exercises if e.slug in passed_slugs)
        times = [r["checked"] for r in results.values() if "checked" in r]
        last = max(times).replace("T", " ")[:16] if times else "-"
        number = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else "?"
        done = "finished" if passed == len(exercises) else ""
        rows.append(
            f"{number:>2}  {stage:<24}{f'{passed} / {len(exercises)}':>8}  {last:<17} {done}"
        )
        if not done:
            i, e = next((i, e) for i, e in enumerate(exercises, 1) if e.slug not in passed_slugs)
            verb = "check" if exercise_file(stage, i, e).is_file() else "start"
            next_steps[stage] = f"next: uv run --package {stage} exercise {verb} {i}   ({e.title})"
    walk = [s for s in next_steps if s != "shared"] + [s for s in next_steps if s == "shared"]
    rows.append(next_steps[walk[0]] if walk else "every stage is finished")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """`uv run learn`: each stage's exercises passed of total, the last check, and what is next."""
    from shared.commands import report_errors

    argv = sys.argv[1:] if argv is None else argv

    def show() -> int:
        parser = _Parser(
            prog="uv run learn",
            description="Your progress through the stages: exercises passed of total, stage by "
            f"stage. The record is {_relative(progress_path())}.",
        )
        parser.parse_args(argv)
        print(progress_table(installed_exercises(), load_progress()))
        return 0

    sys.exit(report_errors(show))
