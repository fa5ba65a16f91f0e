"""Fitness tests for the workspace: the stage order holds, read from the imports themselves.

- each member imports only the standard library, itself, `shared`, the earlier stages it
  declares, and the third-party packages it declares (an optional extra counts only for
  imports inside functions, which is how `shared` uses torch);
- the stages a member declares are allowed by the stage order (ARCHITECTURE.md), and its code
  imports each of them (the other way round);
- training_kit declares, in its dev group, the stages whose tasks its tests train;
- `shared` imports torch only inside functions, and the numpy-only stages' runtime dependency
  closure (from uv.lock) contains no torch;
- no two members declare one console-script name for different targets;
- every member has a README stage guide and a tests/ folder the test command collects.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Stage -> the workspace members it may depend on (ARCHITECTURE.md, "Stage order").
STAGE_ORDER: dict[str, set[str]] = {
    "shared": set(),
    "micrograd": {"shared"},
    "mlp": {"micrograd", "shared"},
    "seq_models": {"shared"},
    "attention": {"seq_models", "shared"},
    "transformer": {"attention", "seq_models", "shared"},
    "tokenizers_fromscratch": {"shared"},
    "gpt": {"transformer", "attention", "seq_models", "tokenizers_fromscratch", "shared"},
    "bert": {"transformer", "attention", "seq_models", "tokenizers_fromscratch", "shared"},
    "t5": {"transformer", "attention", "seq_models", "tokenizers_fromscratch", "shared"},
}
# training_kit may use any stage.
STAGE_ORDER["training_kit"] = set(STAGE_ORDER)

NUMPY_ONLY = ["shared", "micrograd"]  # their runtime closure must not contain torch

# member -> {declared stage its src never imports: why it is still declared}. Each entry is a
# question still open, not a rule: remove it once the declaration is dropped (or imported).
UNUSED_STAGES_KNOWN: dict[str, dict[str, str]] = {}  # none: a stage declares what it imports


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _members() -> dict[str, Path]:
    folders = [ROOT / "shared", *sorted((ROOT / "packages").glob("*"))]
    return {
        _normalize(tomllib.loads((f / "pyproject.toml").read_text())["project"]["name"]): f
        for f in folders
        if (f / "pyproject.toml").is_file()
    }


MEMBERS = _members()


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def _requirement_name(requirement: str) -> str:
    return _normalize(re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0])


def _declared(folder: Path) -> set[str]:
    return {_requirement_name(r) for r in _project(folder).get("dependencies", [])}


def _optional(folder: Path) -> set[str]:
    extras = _project(folder).get("optional-dependencies", {}).values()
    return {_requirement_name(r) for requirements in extras for r in requirements}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, at module level?) for each absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(
                    (a.name.split(".")[0], child.lineno, not in_function) for a in child.names
                )
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], child.lineno, not in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _import_names(distribution: str) -> set[str]:
    """Top-level import names a distribution provides (from the installed metadata)."""
    names = {
        m for m, dists in packages_distributions().items() if distribution in map(_normalize, dists)
    }
    return names or {distribution}


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_declared_stages_follow_the_stage_order(member):
    assert member in STAGE_ORDER, f"{member} is not in the stage order; add it to ARCHITECTURE.md"
    workspace_deps = _declared(MEMBERS[member]) & set(MEMBERS)
    illegal = workspace_deps - STAGE_ORDER[member]
    assert not illegal, f"{member} declares later or unrelated stages {sorted(illegal)}"


def _imported_anywhere(folder: Path) -> set[str]:
    """Top-level modules a member's src imports, at module level or inside functions."""
    return {module for path in (folder / "src").rglob("*.py") for module, _, _ in _imports(path)}


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_declared_stages_are_imported(member):
    """A declared stage the code never imports is a dependency nobody needs at run time.

    (A member's entry points name its own modules, so they add no stage to this.)
    """
    declared = (_declared(MEMBERS[member]) & set(MEMBERS)) - {member}
    unused = declared - _imported_anywhere(MEMBERS[member])
    known = UNUSED_STAGES_KNOWN.get(member, {})
    assert unused <= set(known), (
        f"{member} declares stages its src never imports: {sorted(unused - set(known))} "
        "(move them to the dev group if only the tests need them)"
    )
    stale = set(known) - unused
    assert not stale, f"remove {sorted(stale)} from UNUSED_STAGES_KNOWN[{member!r}]"


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_imports_are_declared(member):
    """Module-level imports need a dependency; imports inside functions may use an extra."""
    folder = MEMBERS[member]

    def import_names(dists: set[str]) -> set[str]:
        names = set(sys.stdlib_module_names) | {member, "__future__"}
        for dist in dists:
            names |= {dist} if dist in MEMBERS else _import_names(dist)
        return names

    required = import_names(_declared(folder))
    lazy_ok = required | import_names(_optional(folder))
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        + ("" if module_level else " (inside a function, but not even an optional extra)")
        for path in sorted((folder / "src").rglob("*.py"))
        for module, line, module_level in _imports(path)
        if module not in (required if module_level else lazy_ok)
    ]
    assert not bad, f"{member} imports what it does not declare:\n" + "\n".join(bad)


def test_shared_imports_torch_only_inside_functions():
    top_level = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "shared" / "src").rglob("*.py"))
        for module, line, module_level in _imports(path)
        if module == "torch" and module_level
    ]
    assert not top_level, f"torch imported at module level in shared: {top_level}"


def test_importing_shared_is_cheap():
    """Every shared module imports without pulling in torch (or matplotlib, or datasets)."""
    modules = sorted(p.stem for p in (ROOT / "shared" / "src" / "shared").glob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('shared' if m == '__init__' else 'shared.' + m)\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'datasets', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing shared loaded {result.stdout.strip()}"


def _required_packages(tree: str) -> set[str]:
    """Package names in `uv tree` output, leaving out optional extras and what they pull in."""
    names, skip_below = set(), None
    for line in tree.splitlines():
        match = re.search(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])? v\d", line)
        if not match:
            continue
        depth = match.start()
        if skip_below is not None and depth > skip_below:
            continue
        skip_below = depth if "(extra:" in line else None
        if skip_below is None:
            names.add(_normalize(match.group(1)))
    return names


@pytest.mark.parametrize("member", [m for m in NUMPY_ONLY if m in MEMBERS])
def test_numpy_only_stage_has_no_torch_in_its_runtime_closure(member):
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    result = subprocess.run(
        [uv, "tree", "--package", member, "--no-dev", "--frozen", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = _required_packages(result.stdout)
    assert member in names and "numpy" in names, result.stdout  # the tree really was read
    assert "torch" not in names, f"{member} pulls in torch at run time:\n{result.stdout}"


def test_no_two_members_declare_one_console_script():
    owners: dict[str, tuple[str, str]] = {}
    clashes = []
    for member, folder in MEMBERS.items():
        for script, target in _project(folder).get("scripts", {}).items():
            if script in owners and owners[script][1] != target:
                clashes.append(
                    f"{script}: {owners[script][0]} -> {owners[script][1]}, {member} -> {target}"
                )
            owners.setdefault(script, (member, target))
    assert not clashes, "console scripts collide in the shared bin/ folder:\n" + "\n".join(clashes)


def test_stage_commands_go_through_the_dispatcher():
    """Stages offer train/sample/eval/... as `shared.commands` entry points, not as scripts."""
    verbs = set(_project(ROOT / "shared")["scripts"])
    for member, folder in MEMBERS.items():
        if member == "shared":
            continue
        scripts = set(_project(folder).get("scripts", {}))
        assert not scripts & verbs, f"{member} declares {sorted(scripts & verbs)} itself"
        offered = set(_project(folder).get("entry-points", {}).get("shared.commands", {}))
        assert offered <= verbs, (
            f"{member} offers {sorted(offered - verbs)}: add to shared's scripts"
        )


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_member_has_guide_and_collected_tests(member):
    folder = MEMBERS[member]
    assert (folder / "README.md").is_file(), f"{member} has no README.md stage guide"
    tests = folder / "tests"
    assert tests.is_dir() and list(tests.glob("test_*.py")), f"{member} has no tests"
    assert not (tests / "__init__.py").exists(), "tests/ folders have no __init__.py"
    for test_file in tests.glob("test_*.py"):
        assert test_file.name.startswith(f"test_{member}_"), f"{test_file.name}: name the stage"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    covered = [ROOT / p for p in config["testpaths"]]
    assert any(tests == c or c in tests.parents for c in covered), f"{tests} is not collected"
    dev = tomllib.loads((folder / "pyproject.toml").read_text()).get("dependency-groups", {})
    assert any(_requirement_name(r) == "pytest" for r in dev.get("dev", [])), (
        f"{member} must list pytest in its dev group"
    )


def _task_owners() -> dict[str, str]:
    """Task name -> the member that offers it as a `shared.tasks` entry point."""
    return {
        task: member
        for member, folder in MEMBERS.items()
        for task in _project(folder).get("entry-points", {}).get("shared.tasks", {})
    }


def _stages_the_tests_use(tests: Path, owners: dict[str, str]) -> dict[str, set[str]]:
    """Member -> the test files that run one of its tasks or import it.

    A task counts when a string in a test names it: `"gpt"`, `load_training_task("gpt")`,
    `"--task=gpt"`, `["--task", "gpt"]` or `"--task gpt ..."` inside a longer command line.
    """
    used: dict[str, set[str]] = {}
    for path in sorted(tests.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        strings = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        named = {s for s in strings if s in owners}
        named |= {m for s in strings for m in re.findall(r"--task[= ]([\w.-]+)", s)}
        stages = {owners[task] for task in named if task in owners}
        stages |= {module for module, _, _ in _imports(path) if module in MEMBERS}
        for stage in stages:
            used.setdefault(stage, set()).add(path.name)
    return used


def test_training_kit_declares_the_stages_its_tests_train():
    """The kit finds tasks through installed entry points, so its code names no stage; its tests
    do, and a dependency group is where a member says what only its tests need."""
    folder = MEMBERS["training_kit"]
    config = tomllib.loads((folder / "pyproject.toml").read_text())
    dev = {
        _requirement_name(r)
        for r in config.get("dependency-groups", {}).get("dev", [])
        if isinstance(r, str)
    }
    runtime = _declared(folder) & _imported_anywhere(folder)
    used = _stages_the_tests_use(folder / "tests", _task_owners())
    assert {"gpt", "seq_models"} <= set(used), f"the tests' tasks were not read: {used}"
    missing = [
        f"{stage} (used by {', '.join(sorted(files))})"
        for stage, files in sorted(used.items())
        if stage not in dev | runtime | {"training_kit", "shared"}
    ]
    assert not missing, "add to training_kit's [dependency-groups].dev:\n" + "\n".join(missing)
    sources = config.get("tool", {}).get("uv", {}).get("sources", {})
    unsourced = sorted(s for s in dev & set(MEMBERS) if not sources.get(s, {}).get("workspace"))
    assert not unsourced, f"give {unsourced} `{{ workspace = true }}` in [tool.uv.sources]"
