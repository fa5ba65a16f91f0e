"""Fitness tests for the shape of the code, read from the source with `ast` (nothing is imported).

- no import circle inside a package: a reader can start at the bottom of each package and read
  upwards, every module leaning only on those already read;
- nothing imports `gpt.cli`: a command's module is the top of its stage, the place where options
  become calls, so everything else (other stages, tools, notebooks) uses the modules below it;
- no function runs over 80 lines, save the few written-out loops that are a stage's lesson.
"""

import ast
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MAX_FUNCTION_LINES = 80

# "<path from the repository root>::<qualified name>" -> why this long function stays whole.
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {
    "packages/training_kit/src/training_kit/loop.py::train": (
        "the kit's own loop under Accelerate is the stage's lesson"
    ),
    "packages/seq_models/src/seq_models/cli.py::train": "the written-out BPTT loop is the lesson",
}


# --- where the code is ---------------------------------------------------------------------------


def _source_roots() -> list[Path]:
    """Each workspace member's import package: shared/src/shared and packages/*/src/*."""
    candidates = [ROOT / "shared" / "src" / "shared", *sorted((ROOT / "packages").glob("*/src/*"))]
    return [c for c in candidates if (c / "__init__.py").is_file()]


SOURCE_ROOTS = _source_roots()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- the module graph of one package --------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One module of a package: its dotted name, its file, and whether it is a package's
    `__init__` (which decides what a relative import is relative to)."""

    name: str
    path: Path
    is_package: bool


def package_modules(root: Path) -> dict[str, Module]:
    """Every module under a package folder, by dotted name (`gpt`, `gpt.chat`, `gpt.cli`)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name, path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`: imports only a type checker runs."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level, in classes and inside functions
    (a lazy import still ties two modules together for a reader), but not under
    `if TYPE_CHECKING:`, whose imports never run."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from runtime_imports(ast.Module(body=child.orelse, type_ignores=[]))  # the else
        else:
            yield from runtime_imports(child)


def _absolute_base(node: ast.ImportFrom, importer: Module) -> str:
    """The module a `from ... import` names, with a relative one made absolute."""
    if node.level == 0:
        return node.module or ""
    package = importer.name if importer.is_package else importer.name.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def _known_prefix(name: str, modules: dict[str, Module]) -> str | None:
    """The longest leading part of a dotted name that is a module of the package, if any:
    `from gpt.model import GPT` names the module `gpt.model`."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imported_modules(node: ast.Import | ast.ImportFrom, importer: Module, modules) -> set[str]:
    """The package's modules one import statement uses.

    `import gpt.x` and `from gpt.x import y` use `gpt.x`; `from gpt import x` uses the submodule
    `gpt.x` when there is one, and otherwise the name `x` defined in `gpt/__init__.py`.
    """
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (found := _known_prefix(alias.name, modules)) is not None:
                targets.add(found)
        return targets
    base = _absolute_base(node, importer)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            targets.add(submodule)
        elif (found := _known_prefix(base, modules)) is not None:
            targets.add(found)
    return targets


def module_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (a module importing itself aside)."""
    modules = package_modules(root)
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        edges = set()
        for node in runtime_imports(_parse(module.path)):
            edges |= imported_modules(node, module, modules)
        graph[module.name] = edges - {module.name}
    return graph


# --- circles --------------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that all reach one another."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowest[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                lowest[node] = min(lowest[node], lowest[successor])
            elif successor in on_stack:
                lowest[node] = min(lowest[node], index[successor])
        if lowest[node] == index[node]:  # node is the root of a component: pop it off
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_circle(start: str, graph: dict[str, set[str]], within: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph.get(node, ())):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if successor in within and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{start} is in no circle")  # a component of two or more always has one


def find_circles(graph: dict[str, set[str]]) -> list[str]:
    """Each import circle as `a -> b -> a`: one shortest circle per component that has any,
    with the component's other members named when the circle does not pass through them all."""
    circles = []
    for component in strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        circle = _shortest_circle(component[0], graph, set(component))
        text = " -> ".join(circle)
        if others := sorted(set(component) - set(circle)):
            text += f"  (also in the circle: {', '.join(others)})"
        circles.append(text)
    return sorted(circles)


def test_the_circle_finder_finds_a_circle_and_passes_a_chain():
    chain = {"a": {"b"}, "b": {"c"}, "c": set()}
    assert find_circles(chain) == []
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_circles(circle) == ["a -> b -> c -> a"]
    two = {"a": {"b", "c"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}
    assert find_circles(two) == ["a -> b -> a", "c -> d -> c"]


def test_the_module_graph_reads_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
        "A = 1\n",
        "b.py": "import pkg.sub.c\nfrom pkg import a\n",
        "sub/__init__.py": "",
        "sub/c.py": "def f():\n    from .. import A\n    from . import d\n",
        "sub/d.py": "from pkg.sub import c\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    assert module_graph(package) == {
        "pkg": {"pkg.a"},
        "pkg.a": set(),  # the TYPE_CHECKING import does not count
        "pkg.b": {"pkg.sub.c", "pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg", "pkg.sub.d"},  # `A` is a name in pkg/__init__.py, `d` a submodule
        "pkg.sub.d": {"pkg.sub.c"},
    }
    assert find_circles(module_graph(package)) == ["pkg.sub.c -> pkg.sub.d -> pkg.sub.c"]


@pytest.mark.parametrize("root", SOURCE_ROOTS, ids=lambda root: root.name)
def test_no_import_circle_inside_a_package(root):
    circles = find_circles(module_graph(root))
    assert not circles, f"{root.name} has import circles:\n" + "\n".join(circles)


# --- nothing imports gpt.cli ----------------------------------------------------------------------


def _imports_gpt_cli(tree: ast.AST, relative_base: str | None) -> list[int]:
    """Lines that import gpt.cli: `import gpt.cli`, `from gpt.cli import ...`,
    `from gpt import cli`, the relative forms inside gpt, and `import_module("gpt.cli")`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == "gpt.cli" or a.name.startswith("gpt.cli.") for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif relative_base is None:
                continue
            else:
                parts = relative_base.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            names = {f"{base}.{a.name}" for a in node.names}
            if base == "gpt.cli" or base.startswith("gpt.cli.") or "gpt.cli" in names:
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "gpt.cli"
        ):
            lines.append(node.lineno)
    return lines


def _package_of(path: Path) -> str | None:
    """The package a relative import in this file is relative to, for files inside gpt's src."""
    gpt_src = ROOT / "packages" / "gpt" / "src"
    if gpt_src not in path.parents:
        return None
    return ".".join(path.parent.relative_to(gpt_src).parts)


def _python_files() -> Iterator[Path]:
    for folder in ("packages", "shared", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if not any(p.startswith(".") or p == "__pycache__" for p in parts):
                yield path


def _notebook_cells(path: Path) -> Iterator[tuple[int, str]]:
    """(cell number, code) for each code cell, with IPython's `%magic` and `!shell` lines
    turned into comments so that the rest parses as Python."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = (source if isinstance(source, str) else "".join(source)).splitlines()
        yield (
            number,
            "\n".join(
                f"# {line}" if line.lstrip().startswith(("%", "!")) else line for line in lines
            ),
        )


def test_the_gpt_cli_check_sees_every_form():
    for text in (
        "import gpt.cli",
        "from gpt.cli import train",
        "from gpt import cli, model",
        "def f():\n    import importlib\n    importlib.import_module('gpt.cli')",
    ):
        assert _imports_gpt_cli(ast.parse(text), None), text
    assert _imports_gpt_cli(ast.parse("from . import cli"), "gpt")
    assert _imports_gpt_cli(ast.parse("from ..cli import train"), "gpt.chat")
    for text in ("import gpt.model", "from gpt import model", "from gpt.client import cli"):
        assert not _imports_gpt_cli(ast.parse(text), None), text


def test_nothing_imports_gpt_cli():
    """Only cli.py itself and tests (which drive commands end to end) may import gpt.cli."""
    own = ROOT / "packages" / "gpt" / "src" / "gpt" / "cli.py"
    found = []
    for path in _python_files():
        if path == own or "tests" in path.relative_to(ROOT).parts:
            continue
        for line in _imports_gpt_cli(_parse(path), _package_of(path)):
            found.append(f"{_relative(path)}:{line}")
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for number, code in _notebook_cells(notebook):
            if _imports_gpt_cli(ast.parse(code, filename=f"{notebook}, cell {number}"), None):
                found.append(f"{_relative(notebook)}, cell {number}")
    assert not found, "these import gpt.cli; use the module below it instead:\n" + "\n".join(found)


# --- function length ------------------------------------------------------------------------------


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines from `def` to the last line) of every function, methods and
    nested functions included; decorators are not counted."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{child.name}"
            yield name, child.end_lineno - child.lineno + 1
            yield from functions(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from functions(child, f"{prefix}{child.name}.")
        else:
            yield from functions(child, prefix)


def _function_lengths() -> dict[str, int]:
    return {
        f"{_relative(path)}::{name}": length
        for root in SOURCE_ROOTS
        for path in sorted(root.rglob("*.py"))
        for name, length in functions(_parse(path))
    }


def test_functions_are_named_by_their_nesting():
    tree = ast.parse(
        "class A:\n    def f(self):\n        def g():\n            pass\n"
        "@decorator\ndef h():\n    pass\n"
    )
    assert list(functions(tree)) == [("A.f", 3), ("A.f.g", 2), ("h", 2)]


def test_no_function_over_80_lines():
    """A function a reader cannot hold in view is several steps that want their own names."""
    long = [
        f"{key}: {length} lines"
        for key, length in sorted(_function_lengths().items())
        if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS_ALLOWED
    ]
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them, or allow one in "
        "LONG_FUNCTIONS_ALLOWED with the reason):\n" + "\n".join(long)
    )


def test_the_long_function_allowlist_is_true():
    """Each allowed long function still exists and is still long, so the list stays short."""
    lengths = _function_lengths()
    stale = [
        f"{key}: " + ("gone" if key not in lengths else f"now {lengths[key]} lines")
        for key in LONG_FUNCTIONS_ALLOWED
        if lengths.get(key, 0) <= MAX_FUNCTION_LINES
    ]
    assert not stale, "remove these from LONG_FUNCTIONS_ALLOWED:\n" + "\n".join(stale)
