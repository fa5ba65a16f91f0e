"""Release one stage: test it, bump its version, date its changelog, commit and tag.

    uv run python tools/release_stage.py micrograd patch --dry-run   # what it would do
    uv run python tools/release_stage.py micrograd patch             # do it

Each stage (`shared` and every `packages/<stage>`) has its own semantic version in its
pyproject.toml and its own CHANGELOG.md in Keep a Changelog form. A release moves what is under
`## [Unreleased]` to `## [X.Y.Z] - today`, sets `version = "X.Y.Z"`, updates uv.lock (it records
the workspace members' versions, so `uv run` would otherwise rewrite it and leave the tree
dirty), commits those files alone as "<stage>: release X.Y.Z" and tags `<stage>-vX.Y.Z`.

It refuses, with one line on stderr and exit code 2, before changing anything: an unknown stage,
uncommitted changes anywhere in the tree (the tests must run on what the tag will name), an
empty Unreleased section (a release that says nothing), a pyproject version that is not the
changelog's top release (someone edited one without the other), and a tag that already exists.
Failing tests end it with exit code 1, also before any file is touched. Nothing is pushed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("major", "minor", "patch")

# [ \t]* rather than \s* before $: \s would run on across the newline into the next lines.
UNRELEASED = re.compile(r"^## \[Unreleased\][ \t]*$", re.MULTILINE)
RELEASE = re.compile(r"^## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})[ \t]*$", re.MULTILINE)
VERSION_LINE = re.compile(r'^version[ \t]*=[ \t]*"([^"]*)"[ \t]*(#.*)?$', re.MULTILINE)

Version = tuple[int, int, int]


class ReleaseError(Exception):
    """An expected refusal: main prints its message as one line and exits with code 2."""


@dataclass(frozen=True)
class Plan:
    """Everything a release will do, worked out before any file changes: what --dry-run shows."""

    stage: str
    folder: Path
    old: Version
    new: Version
    date: str
    pyproject_text: str
    changelog_text: str

    @property
    def tag(self) -> str:
        return f"{self.stage}-v{show(self.new)}"

    @property
    def message(self) -> str:
        return f"{self.stage}: release {show(self.new)}"


def show(version: Version) -> str:
    return ".".join(map(str, version))


def bump(version: Version, part: str) -> Version:
    """Semantic versioning: a part resets every part after it."""
    major, minor, patch = version
    if part == "major":
        return (major + 1, 0, 0)
    if part == "minor":
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def stage_folders(root: Path) -> dict[str, Path]:
    """The workspace members by stage name: `shared` and each packages/<stage> with a pyproject.

    Read from the folders rather than a list kept here, so a new stage can be released the day
    it is added."""
    folders = {}
    if (root / "shared" / "pyproject.toml").is_file():
        folders["shared"] = root / "shared"
    packages = root / "packages"
    if packages.is_dir():
        for folder in sorted(packages.iterdir()):
            if (folder / "pyproject.toml").is_file():
                folders[folder.name] = folder
    return folders


def tests_of(stage: str) -> str:
    """What pytest runs for a stage, relative to the root (shared keeps its tests apart)."""
    return "shared/tests" if stage == "shared" else f"packages/{stage}"


def git(root: Path, *args: str) -> str:
    """Run git in the repository; a failure becomes a ReleaseError with git's own last line."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ReleaseError(f"git {args[0]} failed: {said[-1] if said else done.returncode}")
    return done.stdout


def pyproject_version(text: str, path: Path) -> Version:
    """The [project] table's version, read with tomllib so comments and layout cannot fool it."""
    try:
        version = tomllib.loads(text)["project"]["version"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ReleaseError(f"{path}: no readable [project] version ({exc})") from exc
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not found:
        raise ReleaseError(f"{path}: version {version!r} is not X.Y.Z")
    return tuple(int(part) for part in found.groups())  # type: ignore[return-value]


def set_pyproject_version(text: str, new: Version) -> str:
    """Rewrite only the version line of the [project] table, leaving every other byte alone
    (other tools and people edit these files; a TOML round trip would reformat them)."""
    start = re.search(r"^\[project\][ \t]*$", text, re.MULTILINE)
    if not start:
        raise ReleaseError("pyproject.toml has no [project] table")
    end = re.search(r"^\[", text[start.end() :], re.MULTILINE)
    stop = start.end() + end.start() if end else len(text)
    line = VERSION_LINE.search(text, start.end(), stop)
    if not line:
        raise ReleaseError('pyproject.toml: no `version = "..."` line in [project]')
    return text[: line.start(1)] + show(new) + text[line.end(1) :]


def top_release(changelog: str) -> Version | None:
    """The newest released version in a changelog (its first dated entry), or None."""
    found = RELEASE.search(changelog)
    return tuple(int(part) for part in found.groups()[:3]) if found else None  # type: ignore[return-value]


def unreleased_body(changelog: str) -> tuple[int, int, str]:
    """Where the Unreleased section's body starts and ends, and that body without empty
    subsections (a `### Fixed` with nothing under it says nothing in a release)."""
    head = UNRELEASED.search(changelog)
    if not head:
        raise ReleaseError("the changelog has no `## [Unreleased]` section")
    following = re.compile(r"^## ", re.MULTILINE).search(changelog, head.end())
    end = following.start() if following else len(changelog)
    kept: list[list[str]] = [[]]
    for line in changelog[head.end() : end].strip("\n").splitlines():
        if line.startswith("### "):
            kept.append([line])
        else:
            kept[-1].append(line)
    blocks = ["\n".join(block).strip("\n") for block in kept]
    blocks = [b for b in blocks if b and not re.fullmatch(r"### .*", b)]
    return head.end(), end, "\n\n".join(blocks)


def move_unreleased(changelog: str, new: Version, date: str) -> str:
    """Unreleased's entries go under `## [new] - date`; an empty Unreleased stays on top."""
    start, end, body = unreleased_body(changelog)
    rest = changelog[end:]
    entry = f"## [{show(new)}] - {date}\n\n{body}\n"
    return changelog[:start] + "\n\n" + entry + ("\n" + rest if rest else "")


def plan_release(root: Path, stage: str, part: str, date: str) -> Plan:
    """Check everything that can refuse a release, and work out the new files' text."""
    folders = stage_folders(root)
    if stage not in folders:
        raise ReleaseError(f"unknown stage {stage!r}; the stages are: {', '.join(folders)}")
    changed = git(root, "status", "--porcelain").splitlines()
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise ReleaseError(
            f"the working tree has uncommitted changes ({changed[0][3:]}{more}); commit them first"
        )
    folder = folders[stage]
    pyproject_path, changelog_path = folder / "pyproject.toml", folder / "CHANGELOG.md"
    if not changelog_path.is_file():
        raise ReleaseError(f"{changelog_path.relative_to(root)} does not exist")
    pyproject, changelog = pyproject_path.read_text("utf-8"), changelog_path.read_text("utf-8")
    old = pyproject_version(pyproject, pyproject_path)
    top = top_release(changelog)
    if top is not None and top != old:
        raise ReleaseError(
            f"{stage}'s pyproject says {show(old)} but its changelog's top release is {show(top)}"
        )
    if not unreleased_body(changelog)[2]:
        raise ReleaseError(f"{stage}'s changelog has nothing under [Unreleased] to release")
    new = bump(old, part)
    plan = Plan(
        stage,
        folder,
        old,
        new,
        date,
        set_pyproject_version(pyproject, new),
        move_unreleased(changelog, new, date),
    )
    if git(root, "tag", "--list", plan.tag).strip():
        raise ReleaseError(f"tag {plan.tag} already exists")
    return plan


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside the target, then rename it over the target: a reader (or
    a crash) sees the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_tests(root: Path, stage: str) -> None:
    """The stage's own tests, as a person would run them; their output streams through."""
    command = ["uv", "run", "pytest", tests_of(stage), "-q"]
    print(f"testing: {' '.join(command)}", flush=True)
    if subprocess.run(command, cwd=root).returncode != 0:
        raise SystemExit(f"{stage}'s tests failed; nothing was changed")


def apply(root: Path, plan: Plan) -> str:
    """Write both files (and uv.lock), commit them alone, tag; put the files back if a step
    before the commit fails. Returns the new commit's short hash."""
    pyproject_path, changelog_path = plan.folder / "pyproject.toml", plan.folder / "CHANGELOG.md"
    lock_path = root / "uv.lock"
    paths = [pyproject_path, changelog_path] + ([lock_path] if lock_path.is_file() else [])
    originals = {path: path.read_text("utf-8") for path in paths}
    try:
        write_atomically(pyproject_path, plan.pyproject_text)
        write_atomically(changelog_path, plan.changelog_text)
        if lock_path.is_file():
            locked = subprocess.run(["uv", "lock", "--quiet"], cwd=root)
            if locked.returncode != 0:
                raise ReleaseError("uv lock failed")
        names = [str(path.relative_to(root)) for path in paths]
        git(root, "commit", "--quiet", "-m", plan.message, "--", *names)
    except BaseException:
        for path, text in originals.items():
            write_atomically(path, text)
        raise
    git(root, "tag", "-a", plan.tag, "-m", f"{plan.stage} {show(plan.new)}")
    return git(root, "rev-parse", "--short", "HEAD").strip()


class _OneLineParser(argparse.ArgumentParser):
    """A bad command line is one line on stderr and exit 2, like every refusal of this tool."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog="release_stage.py",
        description="Release one stage: run its tests, bump its version, move its changelog's "
        "Unreleased entries under the new version and today's date, commit, and tag "
        "<stage>-vX.Y.Z. Refuses (exit 2, one line, nothing changed) on an unknown stage, "
        "a dirty tree, an empty Unreleased section or an existing tag.",
    )
    parser.add_argument("stage", help="shared, or a folder name in packages/ (micrograd, gpt, ...)")
    parser.add_argument(
        "part",
        choices=PARTS,
        help="which part of X.Y.Z to raise; required, there is no default: major for a "
        "change that breaks a command or API the guide teaches, minor for something new, "
        "patch for a fix",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would happen and change nothing"
    )
    parser.add_argument(
        "--skip-tests",
        action="store_true",
        help="do not run the stage's tests (the tool's own tests)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="the repository (default: the one holding this tool)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.root.resolve()
    try:
        plan = plan_release(root, args.stage, args.part, datetime.date.today().isoformat())
        where = plan.folder.relative_to(root)
        steps = [
            f"{plan.stage}: {show(plan.old)} -> {show(plan.new)} ({args.part})",
            "tests: skipped" if args.skip_tests else f"tests: uv run pytest {tests_of(plan.stage)}",
            f'{where}/pyproject.toml: version = "{show(plan.new)}"',
            f"{where}/CHANGELOG.md: Unreleased -> [{show(plan.new)}] - {plan.date}",
            "uv.lock: uv lock" if (root / "uv.lock").is_file() else "uv.lock: none here",
            f'commit: "{plan.message}"',
            f"tag: {plan.tag}",
        ]
        if args.dry_run:
            print("dry run, nothing changed; a release would do:")
            print("\n".join(f"  {step}" for step in steps))
            return 0
        if not args.skip_tests:
            run_tests(root, plan.stage)
        commit = apply(root, plan)
    except ReleaseError as exc:
        print(f"release_stage: {exc}", file=sys.stderr)
        return 2
    print(f"released {plan.stage} {show(plan.new)}: commit {commit}, tag {plan.tag}")
    print(f"publish with: git push origin HEAD {plan.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
