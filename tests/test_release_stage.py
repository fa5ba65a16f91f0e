"""tools/release_stage.py on a throwaway git repository, never on this one.

Each test builds a tiny repository in tmp_path holding one fake stage, packages/toy (a
pyproject.toml and a CHANGELOG.md), and runs the real script on it with --root and
--skip-tests (the toy has no tests to run). They check what a release leaves behind (the
version, the moved changelog entries, a commit of exactly those files, the tag), that
--dry-run changes nothing, and that each refusal is one line, exit code 2 and no change.
"""

import datetime
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "release_stage.py"

PYPROJECT = """\
[project]
name = "toy"
version = "1.2.3"  # this line alone changes
license = "MIT"
requires-python = ">=3.11"
dependencies = []

[tool.other]
version = "9.9.9"
"""

CHANGELOG = """\
# Changelog: toy

## [Unreleased]

### Added

- A thing.
- Another thing.

### Fixed

## [1.2.3] - 2026-11-28

### Added

- The first things.

## [1.0.0] - 2026-11-22

First built.
"""


def load_tool():
    """The script as a module, for its pure functions (it is not a package to import)."""
    spec = importlib.util.spec_from_file_location("release_stage", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_stage"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def clean_env() -> dict[str, str]:
    """This process's environment without git's repository pointers (a hook or an IDE may set
    them), so every git call lands in the throwaway repository."""
    return {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=clean_env(), check=True
    )
    return done.stdout.strip()


def make_repo(repo: Path, changelog: str = CHANGELOG, workspace: bool = False) -> Path:
    stage = repo / "packages" / "toy"
    stage.mkdir(parents=True)
    (stage / "pyproject.toml").write_text(PYPROJECT)
    (stage / "CHANGELOG.md").write_text(changelog)
    (repo / "README.md").write_text("a throwaway repository\n")
    if workspace:
        (repo / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
        subprocess.run(["uv", "lock", "--quiet"], cwd=repo, check=True, env=clean_env())
    git(repo, "init", "--quiet")
    for key, value in [
        ("user.name", "release test"),
        ("user.email", "release-test@example.invalid"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ]:
        git(repo, "config", key, value)
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "start")
    return repo


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def release(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args, "--root", str(repo), "--skip-tests"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )


def snapshot(repo: Path) -> dict[str, object]:
    """What a refused or dry run must leave alone: every file, HEAD and the tags."""
    files = {
        str(path.relative_to(repo)): path.read_bytes()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }
    return {"files": files, "head": git(repo, "rev-parse", "HEAD"), "tags": git(repo, "tag")}


def today_or_yesterday() -> set[str]:
    """The release's date, allowing for a run that crosses midnight."""
    now = datetime.date.today()
    return {now.isoformat(), (now - datetime.timedelta(days=1)).isoformat()}


@pytest.mark.parametrize(
    "part, expected", [("patch", (1, 2, 4)), ("minor", (1, 3, 0)), ("major", (2, 0, 0))]
)
def test_bump(part, expected):
    assert load_tool().bump((1, 2, 3), part) == expected


def test_a_patch_release(repo):
    done = release(repo, "toy", "patch")
    assert done.returncode == 0, done.stderr
    assert "released toy 1.2.4" in done.stdout

    stage = repo / "packages" / "toy"
    assert (stage / "pyproject.toml").read_text() == PYPROJECT.replace(
        'version = "1.2.3"', 'version = "1.2.4"'
    ), "only the [project] version line may change"

    changelog = (stage / "CHANGELOG.md").read_text()
    day = changelog.split("## [1.2.4] - ")[1][:10]
    assert day in today_or_yesterday()
    assert changelog == CHANGELOG.replace(
        "## [Unreleased]\n\n### Added\n\n- A thing.\n- Another thing.\n\n### Fixed\n\n",
        f"## [Unreleased]\n\n## [1.2.4] - {day}\n\n### Added\n\n- A thing.\n- Another thing.\n\n",
    ), "Unreleased's entries move under the new version, an empty Fixed is dropped"

    assert git(repo, "log", "-1", "--format=%s") == "toy: release 1.2.4"
    assert git(repo, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        "packages/toy/CHANGELOG.md",
        "packages/toy/pyproject.toml",
    ]
    assert git(repo, "rev-parse", "toy-v1.2.4^{commit}") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain") == ""
    assert not list(stage.glob(".*.tmp")), "no temporary file left behind"


def test_a_second_release_needs_new_entries(repo):
    """After a release Unreleased is empty, so releasing again is refused until something is
    written there; then the next version stacks on top."""
    assert release(repo, "toy", "minor").returncode == 0
    again = release(repo, "toy", "patch")
    assert again.returncode == 2 and "nothing under [Unreleased]" in again.stderr

    changelog = repo / "packages" / "toy" / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]\n", "## [Unreleased]\n\n- A fix.\n")
    )
    git(repo, "commit", "--quiet", "-am", "a fix")
    assert release(repo, "toy", "patch").returncode == 0
    text = changelog.read_text()
    assert text.index("## [1.3.1]") < text.index("## [1.3.0]") < text.index("## [1.2.3]")
    assert "## [Unreleased]\n\n## [1.3.1]" in text
    assert git(repo, "tag").splitlines() == ["toy-v1.3.0", "toy-v1.3.1"]


def test_dry_run_changes_nothing(repo):
    before = snapshot(repo)
    done = release(repo, "toy", "minor", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "toy: 1.2.3 -> 1.3.0 (minor)" in done.stdout
    assert "tag: toy-v1.3.0" in done.stdout
    assert snapshot(repo) == before


def dirty(repo: Path) -> None:
    (repo / "README.md").write_text("edited, not committed\n")


def untracked(repo: Path) -> None:
    (repo / "notes.txt").write_text("new, not added\n")


def empty_unreleased(repo: Path) -> None:
    changelog = repo / "packages" / "toy" / "CHANGELOG.md"
    changelog.write_text(
        CHANGELOG.replace("- A thing.\n- Another thing.\n", "").replace("### Added\n\n", "")
    )
    git(repo, "commit", "--quiet", "-am", "empty Unreleased")


def existing_tag(repo: Path) -> None:
    git(repo, "tag", "toy-v1.2.4")


def version_mismatch(repo: Path) -> None:
    pyproject = repo / "packages" / "toy" / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('"1.2.3"', '"1.2.5"'))
    git(repo, "commit", "--quiet", "-am", "hand edit")


@pytest.mark.parametrize(
    "stage, spoil, said",
    [
        ("nosuch", None, "unknown stage 'nosuch'"),
        ("toy", dirty, "uncommitted changes (README.md)"),
        ("toy", untracked, "uncommitted changes (notes.txt)"),
        ("toy", empty_unreleased, "nothing under [Unreleased]"),
        ("toy", existing_tag, "tag toy-v1.2.4 already exists"),
        ("toy", version_mismatch, "pyproject says 1.2.5 but its changelog's top release is 1.2.3"),
    ],
    ids=[
        "unknown-stage",
        "dirty-tree",
        "untracked-file",
        "empty-unreleased",
        "tag-exists",
        "version-mismatch",
    ],
)
def test_refusals(repo, stage, spoil, said):
    if spoil:
        spoil(repo)
    before = snapshot(repo)
    done = release(repo, stage, "patch")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("release_stage: "), done.stderr
    assert said in lines[0]
    assert snapshot(repo) == before


def test_a_bad_part_is_a_usage_error(repo):
    done = release(repo, "toy", "huge")
    assert done.returncode == 2 and "invalid choice: 'huge'" in done.stderr


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_the_lock_follows_the_version(tmp_path):
    """In a uv workspace the lock records each member's version; the release updates it and
    commits it with the other two, so the tree stays clean (uv run would rewrite it)."""
    repo = make_repo(tmp_path / "repo", workspace=True)
    done = release(repo, "toy", "patch")
    assert done.returncode == 0, done.stderr
    lock = (repo / "uv.lock").read_text()
    assert 'name = "toy"\nversion = "1.2.4"' in lock
    assert "uv.lock" in git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert git(repo, "status", "--porcelain") == ""
