"""The command dispatcher: `uv run --package X train` runs X's train, whatever else is installed."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared import commands
from shared.errors import UsageError

SHARED_SRC = Path(commands.__file__).resolve().parent


# ----------------------------------------------------------------------------------------------
# The rules, one at a time


class _FakeEntryPoint:
    def __init__(self, stage: str, command: str):
        self.name, self.value = command, f"{stage}.cli:{command}"
        self.stage = stage

    def load(self):
        return lambda argv: print(f"{self.stage} {self.name} {argv}")


@pytest.fixture
def two_stages(monkeypatch):
    table = {
        "alpha": {"train": _FakeEntryPoint("alpha", "train")},
        "beta": {"train": _FakeEntryPoint("beta", "train"), "sample": None},
    }

    def available(command=None):
        return {s: c for s, c in table.items() if command is None or command in c}

    monkeypatch.setattr(commands, "available", available)
    monkeypatch.setattr(commands, "stage_from_parent_processes", lambda: None)
    monkeypatch.setattr(commands, "stage_from_directory", lambda stages: None)
    return table


def test_explicit_stage_wins_and_is_removed_from_argv(two_stages, monkeypatch):
    monkeypatch.setattr(commands, "stage_from_parent_processes", lambda: "alpha")
    assert commands.choose_stage("train", ["--stage", "beta", "--lr=1"]) == ("beta", ["--lr=1"])
    assert commands.choose_stage("train", ["--stage=beta"]) == ("beta", [])


def test_parent_uv_run_package_is_next(two_stages, monkeypatch):
    monkeypatch.setattr(commands, "stage_from_parent_processes", lambda: "beta")
    monkeypatch.setattr(commands, "stage_from_directory", lambda stages: "alpha")
    assert commands.choose_stage("train", []) == ("beta", [])


def test_directory_then_the_only_offer(two_stages, monkeypatch):
    monkeypatch.setattr(commands, "stage_from_directory", lambda stages: "alpha")
    assert commands.choose_stage("train", []) == ("alpha", [])
    monkeypatch.setattr(commands, "stage_from_directory", lambda stages: None)
    assert commands.choose_stage("sample", []) == ("beta", [])


def test_ambiguous_or_unknown_lists_the_choices(two_stages, monkeypatch):
    with pytest.raises(UsageError, match=r"offered by several stages \(alpha, beta\)"):
        commands.choose_stage("train", [])
    with pytest.raises(UsageError, match="stage 'gamma' has no 'train' command; choose from"):
        commands.choose_stage("train", ["--stage", "gamma"])
    with pytest.raises(UsageError, match="no installed stage offers 'translate'"):
        commands.choose_stage("translate", [])
    monkeypatch.setattr(commands, "stage_from_parent_processes", lambda: "alpha")
    with pytest.raises(UsageError, match="package 'alpha' has no 'sample' command"):
        commands.choose_stage("sample", [])


@pytest.mark.parametrize(
    "argv, package",
    [
        (["/usr/bin/uv", "run", "--package", "gpt", "train"], "gpt"),
        (["uv", "run", "--package=bert", "eval", "--x"], "bert"),
        (["uv", "run", "train"], None),
        (["python", "run", "--package", "gpt"], None),
        ([], None),
    ],
)
def test_reading_uv_run_package(argv, package):
    assert commands._uv_package(argv) == package


def test_our_own_process_is_readable():
    info = commands._process_args(os.getpid())
    if info is None:
        pytest.skip("this OS does not expose process arguments")
    argv, parent = info
    assert argv and parent == os.getppid()


# ----------------------------------------------------------------------------------------------
# The real thing: a throwaway two-stage workspace built and run with uv


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _make_workspace(root: Path) -> None:
    """shared (the real dispatcher files) plus two stages that both offer `train`."""
    _write(root / "pyproject.toml", '[tool.uv.workspace]\nmembers = ["shared", "alpha", "beta"]\n')
    build = '[build-system]\nrequires = ["uv_build>=0.9,<0.14"]\nbuild-backend = "uv_build"\n'
    _write(
        root / "shared" / "pyproject.toml",
        '[project]\nname = "shared"\nversion = "0"\nrequires-python = ">=3.11"\n'
        '[project.scripts]\ntrain = "shared.commands:train"\n' + build,
    )
    package = root / "shared" / "src" / "shared"
    package.mkdir(parents=True)
    for name in ("commands.py", "errors.py"):
        shutil.copy(SHARED_SRC / name, package / name)
    (package / "__init__.py").write_text("")
    for stage in ("alpha", "beta"):
        _write(
            root / stage / "pyproject.toml",
            f'[project]\nname = "{stage}"\nversion = "0"\nrequires-python = ">=3.11"\n'
            'dependencies = ["shared"]\n'
            f'[project.entry-points."shared.commands"]\ntrain = "{stage}.cli:train"\n'
            "[tool.uv.sources]\nshared = { workspace = true }\n" + build,
        )
        _write(root / stage / "src" / stage / "__init__.py", "")
        _write(
            root / stage / "src" / stage / "cli.py",
            f"""\
            from shared.errors import UsageError

            def train(argv):
                if "--bad" in argv:
                    raise UsageError("unknown option --bad for {stage} train")
                print("{stage} trains", argv)
            """,
        )


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    return uv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage_ws")
    _make_workspace(root)
    return root


def _uv_run(workspace: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
    env["UV_OFFLINE"] = "1"  # the build backend is uv's own: nothing to fetch
    env["UV_PYTHON"] = sys.executable
    return subprocess.run(
        [_uv(), "run", *args],
        cwd=cwd or workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("order", [("beta", "alpha"), ("alpha", "beta")])
def test_uv_run_package_runs_that_stage_in_either_order(workspace, order):
    for stage in (*order, *order):  # each run re-syncs its package: the last one must not win
        result = _uv_run(workspace, "--package", stage, "train", "--lr=1")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{stage} trains ['--lr=1']"


def test_workspace_rules_without_package(workspace):
    result = _uv_run(workspace, "--all-packages", "train")
    assert result.returncode == 2
    assert "offered by several stages (alpha, beta)" in result.stderr
    inside = _uv_run(workspace, "--all-packages", "train", cwd=workspace / "beta" / "src")
    assert inside.stdout.strip() == "beta trains []", inside.stderr
    explicit = _uv_run(workspace, "--package", "alpha", "train", "--stage", "beta")
    assert explicit.stdout.strip() == "beta trains []", explicit.stderr


def test_expected_failure_is_one_line_and_exit_2(workspace):
    result = _uv_run(workspace, "--package", "alpha", "train", "--bad")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: unknown option --bad for alpha train"
    assert "Traceback" not in result.stderr
