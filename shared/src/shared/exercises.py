"""Exercises that check themselves: the learner writes a stage's central piece, the stage judges it.

An exercise is the reference with its body taken out (STYLE.md item 16). It names one function or
method of the stage, say `Tensor.__mul__` or `scaled_dot_product_attention`; the learner writes a
function of that name and signature in `exercises/<stage>/NN_<slug>.py`, and `check` calls both
the learner's function and the stage's own on the same random inputs (each input a `Case`),
then compares what they return, and the gradients where the piece has them. So a check can never
disagree with the code the guide explains: the judge is that code.

What a failed check says fits on one screen: which input (its label and seed), the first element
that differs (expected against got), and the hint's first line. An exception raised by the
learner's code is shown as the learner's own line; `NotImplementedError`, which the skeleton
raises, reads "not written yet".

The `exercise` verb and the `learn` progress table live in `shared/learn.py`; each stage lists its
exercises in `<stage>/exercises.py` as `EXERCISES`. Left out: timing the learner's code (speed is
the guide's business, not the check's), and partial credit.
"""

from __future__ import annotations

import ast
import copy
import inspect
import math
import random
import sys
import textwrap
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# What an exercise is


@dataclass(frozen=True)
class Case:
    """One input the learner's function and the reference are both called with.

    `args` are copied before each call (deep copy), so a function that changes its inputs cannot
    change what the other one sees. Every random number generator (Python's, numpy's global one,
    torch's) is seeded with `seed` before each call, so a piece that draws random numbers draws
    the same ones in both.
    """

    label: str  # what the learner reads when this case fails: "a (3, 1) times b (1, 4)"
    args: tuple = ()
    seed: int = 0


@dataclass(frozen=True)
class Exercise:
    """One piece of a stage for the learner to write, with what `check` needs to judge it."""

    slug: str  # the file name: exercises/<stage>/NN_<slug>.py
    title: str  # one line for `exercise list`
    reference: Callable[..., Any]  # the stage's own function, or method (self comes first)
    cases: Callable[[], Sequence[Case]]  # fresh inputs each time it is called
    hint: str  # its first line is shown under a failure; `exercise hint N` prints all of it
    imports: str = ""  # the skeleton's import lines: everything the reference's source needs
    function: str = ""  # the name the learner defines; default: the reference's own name
    docstring: str = ""  # the skeleton's docstring, where the reference's lacks the shapes
    # After a call, the gradients to compare: (the call's copied args, what it returned) ->
    # {name: array}. `torch_gradients` serves pieces built from torch; None compares values only.
    gradients: Callable[[tuple, Any], dict[str, Any]] | None = None
    # How to call a function on a case's args, where `function(*args)` is not enough (running it
    # in two processes, say): (function, args) -> output. The gradients hook is not used then.
    call: Callable[[Callable[..., Any], tuple], Any] | None = None
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def name(self) -> str:
        return self.function or self.reference.__name__


@dataclass
class CheckResult:
    passed: bool
    message: str  # "passed: 4 cases" or the one-screen report of the first failure
    not_written: bool = False  # the learner's function still raises NotImplementedError


class LearnerCodeError(Exception):
    """The learner's file cannot be loaded or lacks the function: the message says where."""


# ----------------------------------------------------------------------------------------------
# The texts: skeleton and solution, both cut from the reference's own source


def _function_node(source: str) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise TypeError(f"the reference is not a function: {source.splitlines()[0]!r}")
    return node


def reference_source(exercise: Exercise) -> str:
    """The reference's source, dedented, decorators dropped, renamed to the learner's name."""
    source = textwrap.dedent(inspect.getsource(exercise.reference))
    node = _function_node(source)
    lines = source.splitlines()[node.lineno - 1 :]  # lineno is the `def` line, after decorators
    text = "\n".join(lines) + "\n"
    if exercise.function and exercise.function != node.name:
        text = text.replace(f"def {node.name}(", f"def {exercise.function}(", 1)
    return text


def skeleton(exercise: Exercise, number: int, stage: str) -> str:
    """The file `exercise start` writes: a header, the imports, the signature, the docstring,
    and a body that raises NotImplementedError."""
    source = reference_source(exercise)
    node = _function_node(source)
    lines = source.splitlines()
    first_body = node.body[0]
    has_docstring = isinstance(first_body, ast.Expr) and isinstance(
        getattr(first_body, "value", None), ast.Constant
    )
    signature_end = first_body.lineno - 1  # lines before the body's first statement
    signature = "\n".join(lines[:signature_end])
    indent = " " * first_body.col_offset
    if exercise.docstring:
        doc = textwrap.indent('"""' + exercise.docstring.strip() + '\n"""', indent)
    elif has_docstring:
        doc = "\n".join(lines[signature_end : first_body.end_lineno])
    else:
        doc = ""
    body = f"{indent}raise NotImplementedError  # your code here: replace this line"
    header = (
        f'"""Exercise {number} of {stage}: {exercise.title}.\n\n'
        f"Write `{exercise.name}` below, then run\n\n"
        f"    uv run --package {stage} exercise check {number}\n\n"
        f"`exercise hint {number}` gives a hint; `exercise solution {number}` prints the stage's "
        f"own code.\n"
        '"""\n'
    )
    parts = [header]
    if exercise.imports.strip():
        parts.append(textwrap.dedent(exercise.imports).strip() + "\n")
    parts.append("\n" + "\n".join(x for x in (signature, doc, body) if x) + "\n")
    return "\n".join(parts)


def solution(exercise: Exercise) -> str:
    """The stage's own code for the piece, ready to paste over the skeleton's function."""
    where = f"{exercise.reference.__module__}.{exercise.reference.__qualname__}"
    return f"# {where}, from the stage's own code\n{reference_source(exercise)}"


# ----------------------------------------------------------------------------------------------
# Loading the learner's file


def load_function(path: Path, name: str) -> Callable[..., Any]:
    """Import the learner's file afresh and return its function `name`."""
    module_name = f"_exercise_{abs(hash(str(path)))}"
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module  # a dataclass in the learner's file looks itself up here
    try:
        # Compiled from the text every time, never from a __pycache__ beside the learner's file:
        # an edit saved within the second of the last check would otherwise run the old code.
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        exec(code, module.__dict__)
    except SyntaxError as error:
        raise LearnerCodeError(
            f"{path}:{error.lineno}: syntax error: {error.msg}\n    {(error.text or '').strip()}"
        ) from None
    except Exception as error:
        raise LearnerCodeError(
            f"importing your file raised {_describe_exception(error, path)}"
        ) from None
    finally:
        sys.modules.pop(module_name, None)
    function = getattr(module, name, None)
    if not callable(function):
        raise LearnerCodeError(f"{path} defines no function `{name}`; write `def {name}(...)`")
    return function


def _describe_exception(error: BaseException, path: Path | None) -> str:
    """`ValueError: ...` and, where the learner's file is in the traceback, its last line there."""
    text = f"{type(error).__name__}: {error}"
    if path is None:
        return text
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if Path(f.filename).resolve() == path.resolve()
    ]
    if frames:
        f = frames[-1]
        text += f"\n  at {path.name}:{f.lineno}: {(f.line or '').strip()}"
    return text


# ----------------------------------------------------------------------------------------------
# Comparing


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")  # seed torch only where something already imported it
    if torch is not None:
        torch.manual_seed(seed)


def _as_array(value: Any) -> np.ndarray | None:
    """A torch tensor, a micrograd Tensor or a numpy array as a numpy array; else None."""
    if isinstance(value, np.ndarray):
        return value
    torch = sys.modules.get("torch")
    if torch is not None and torch.is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float() if tensor.itemsize < 4 else tensor
        return tensor.numpy()
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray):  # a micrograd Tensor
        return data
    return None


def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return f"{float(x):.6g}"
    return repr(x.item() if isinstance(x, np.generic) else x)


def _array_kind(value: Any) -> tuple[str, str]:
    """('a torch tensor', 'torch.bool'), ('a numpy array', 'float32') or ('a Tensor', 'float64')."""
    if isinstance(value, np.ndarray):
        return "a numpy array", str(value.dtype)
    torch = sys.modules.get("torch")
    if torch is not None and torch.is_tensor(value):
        return "a torch tensor", str(value.dtype)
    return f"a {type(value).__name__}", str(value.data.dtype)


def first_difference(expected: Any, got: Any, where: str, rtol: float, atol: float) -> str | None:
    """None when `got` matches `expected`; else one line naming the first element that differs.

    Arrays must match in kind and dtype too: a float 0/1 mask where a bool mask is expected is
    added to attention scores instead of masking them, and float64 where float32 is expected
    doubles the memory of everything after it.
    """
    exp_array, got_array = _as_array(expected), _as_array(got)
    if exp_array is not None:
        if got_array is None:
            return (
                f"{where}: expected an array of shape {exp_array.shape}, got {type(got).__name__}"
            )
        if exp_array.shape != got_array.shape:
            return f"{where}: expected shape {exp_array.shape}, got shape {got_array.shape}"
        (exp_kind, exp_dtype), (got_kind, got_dtype) = _array_kind(expected), _array_kind(got)
        if exp_kind != got_kind:
            return f"{where}: expected {exp_kind}, got {got_kind}"
        if exp_dtype != got_dtype:
            return f"{where}: expected dtype {exp_dtype}, got dtype {got_dtype}"
        if exp_array.dtype.kind in "biu" or got_array.dtype.kind in "biu":
            same = exp_array == got_array
        else:
            same = np.isclose(got_array, exp_array, rtol=rtol, atol=atol, equal_nan=True)
        if np.all(same):
            return None
        index = tuple(int(i) for i in np.argwhere(~same)[0])
        n_bad = int((~same).sum())
        if not index:  # a 0-d array: one number
            return f"{where}: expected {_fmt(exp_array[()])}, got {_fmt(got_array[()])}"
        return (
            f"{where}, element [{', '.join(map(str, index))}] (shape {exp_array.shape}, "
            f"{n_bad} of {same.size} elements differ): expected {_fmt(exp_array[index])}, "
            f"got {_fmt(got_array[index])}"
        )
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            return f"{where}: expected a dict with keys {sorted(expected)}, got {keys}"
        for key in expected:
            found = first_difference(expected[key], got[key], f"{where}[{key!r}]", rtol, atol)
            if found:
                return found
        return None
    if isinstance(expected, list | tuple):
        if not isinstance(got, list | tuple):
            return f"{where}: expected a {type(expected).__name__}, got {type(got).__name__}"
        for i, (e, g) in enumerate(zip(expected, got, strict=False)):
            found = first_difference(e, g, f"{where}[{i}]", rtol, atol)
            if found:
                if len(expected) != len(got):
                    found += f" (and {len(expected)} items expected, {len(got)} got)"
                return found
        if len(expected) != len(got):  # one is the other's beginning: name the first extra item
            n = min(len(expected), len(got))
            extra = (
                f"expected {_fmt(expected[n])}, got nothing"
                if len(expected) > n
                else (f"expected nothing, got {_fmt(got[n])}")
            )
            return f"{where}[{n}]: {extra} ({len(expected)} items expected, {len(got)} got)"
        return None
    if got_array is not None:
        return f"{where}: expected {_fmt(expected)}, got an array of shape {got_array.shape}"
    if isinstance(expected, float) and isinstance(got, int | float | np.number):
        if math.isclose(float(got), expected, rel_tol=rtol, abs_tol=atol) or (
            math.isnan(expected) and math.isnan(float(got))
        ):
            return None
        return f"{where}: expected {_fmt(expected)}, got {_fmt(got)}"
    if expected != got:
        return f"{where}: expected {_fmt(expected)}, got {_fmt(got)}"
    return None


def torch_gradients(args: tuple, output: Any) -> dict[str, Any]:
    """Backpropagate a fixed random weighting of every float output, then collect the gradients
    of the arguments that require them and of the parameters of any module among the arguments.

    The weighting (seeded, the same for both calls) makes every output element count, so a
    gradient that is right only for a plain `.sum()` still fails.
    """
    import torch

    outputs = [t for t in _flatten(output) if torch.is_tensor(t) and t.requires_grad]
    if not outputs:
        return {}
    generator = torch.Generator().manual_seed(1234)
    loss = sum((o.float() * torch.randn(o.shape, generator=generator)).sum() for o in outputs)
    leaves: dict[str, Any] = {}
    for i, arg in enumerate(args):
        if isinstance(arg, torch.nn.Module):
            for name, p in arg.named_parameters():
                if p.requires_grad:
                    leaves[f"the gradient of argument {i}'s {name}"] = p
        for j, t in enumerate(_flatten(arg)):
            if torch.is_tensor(t) and t.requires_grad and t.is_leaf:
                suffix = f" (item {j})" if isinstance(arg, list | tuple | dict) else ""
                leaves[f"the gradient of argument {i}{suffix}"] = t
    for leaf in leaves.values():
        leaf.grad = None
    loss.backward()
    return {
        name: (leaf.grad if leaf.grad is not None else torch.zeros_like(leaf))
        for name, leaf in leaves.items()
    }


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


@dataclass
class _Call:
    output: Any = None
    gradients: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


def _call(exercise: Exercise, function: Callable[..., Any], case: Case) -> _Call:
    args = copy.deepcopy(case.args)
    _seed_everything(case.seed)
    try:
        if exercise.call is not None:
            return _Call(output=exercise.call(function, args))
        output = function(*args)
        gradients = exercise.gradients(args, output) if exercise.gradients else {}
    except Exception as error:  # the learner's bug, reported as such
        return _Call(error=error)
    return _Call(output=output, gradients=gradients)


def check(
    exercise: Exercise, candidate: Callable[..., Any], path: Path | None = None
) -> CheckResult:
    """Compare `candidate` with the exercise's reference on every case; stop at the first failure.

    `path` is the learner's file, so that an exception can be shown at the learner's own line.
    """
    cases = list(exercise.cases())
    hint = exercise.hint.strip().splitlines()[0]
    for case in cases:
        where = f"on input {case.label} (seed {case.seed})"
        got = _call(exercise, candidate, case)
        if isinstance(got.error, NotImplementedError):
            return CheckResult(
                False, f"not written yet: `{exercise.name}` still raises NotImplementedError", True
            )
        if got.error is not None:
            return CheckResult(
                False,
                f"your code failed {where}:\n  {_describe_exception(got.error, path)}\n"
                f"hint: {hint}",
            )
        expected = _call(exercise, exercise.reference, case)
        if expected.error is not None:  # a bug in the exercise, not the learner's: keep it loud
            raise expected.error
        difference = first_difference(
            expected.output, got.output, "output", exercise.rtol, exercise.atol
        )
        if difference is None:
            for name, grad in expected.gradients.items():
                if name not in got.gradients:
                    difference = f"{name}: missing (does your output still depend on it?)"
                    break
                difference = first_difference(
                    grad, got.gradients[name], name, exercise.rtol, exercise.atol
                )
                if difference:
                    break
        if difference is not None:
            return CheckResult(
                False, f"wrong {where}:\n  first difference at {difference}\nhint: {hint}"
            )
    return CheckResult(True, f"passed: {len(cases)} inputs match the stage's own code")


def check_file(exercise: Exercise, path: Path) -> CheckResult:
    """Load the learner's file and check its function; a file that fails to load fails the check."""
    try:
        function = load_function(path, exercise.name)
    except LearnerCodeError as error:
        return CheckResult(False, str(error))
    return check(exercise, function, path)
