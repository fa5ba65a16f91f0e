"""Stage 0's exercises: three pieces of plumbing every later stage trusts, checked against
`shared` itself.

    uv run --package shared exercise list

1. `lr_factor` (training.py): warmup, then a decay that ends with the step or the time budget.
   The check runs the learner's schedule and the stage's over every step of a few budgets and
   compares the whole curve, step by step.
2. `set_rng_state` (seeding.py): the other half of an exact resume. The check saves every
   generator's state with the stage's `rng_state`, sends it through JSON as a checkpoint does,
   scrambles the generators, restores them with the learner's function and compares the numbers
   drawn next.
3. `_finish` (download.py): a downloaded file is kept only if its checksum matches. The check
   runs it in a scratch folder and compares what is left there (which files, their bytes) and
   whether it refused the file.

Each check has the learner's function work as the stage uses it (through a `call` hook), so what
is compared is what matters: a schedule, the next random numbers, a folder. torch is imported
inside the functions only: `shared` stays importable without it.
"""

import contextlib
import hashlib
import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.download import _finish
from shared.errors import DatasetError
from shared.exercises import Case, Exercise
from shared.learn import exercise_command
from shared.seeding import rng_state, seed_everything, set_rng_state
from shared.training import lr_factor

# ----------------------------------------------------------------------------------------------
# 1. The learning-rate schedule


def _schedule_curve(function: Callable[..., float], args: tuple) -> dict[str, float]:
    """The schedule at every (step, elapsed seconds) of the case: {"step 12": factor}, or
    {"step 12 at 4.8 s": factor} where the case has a time budget."""
    settings, points = args
    timed = "seconds" in settings
    return {
        f"step {step} at {elapsed:g} s" if timed else f"step {step}": function(
            step, elapsed, **settings
        )
        for step, elapsed in points
    }


def _schedule_cases() -> list[Case]:
    def steps(n: int, seconds_a_step: float = 0.0) -> list[tuple[int, float]]:
        return [(s, round(s * seconds_a_step, 6)) for s in range(n)]

    table = [
        ("warmup 5, max_steps 30, cosine to 0: steps 0-34 (past the end too)",
         {"warmup_steps": 5, "max_steps": 30}, steps(35)),
        ("warmup 10, max_steps 110, cosine to min_ratio 0.1: steps 0-119",
         {"warmup_steps": 10, "max_steps": 110, "min_ratio": 0.1}, steps(120)),
        ("warmup 3, max_steps 20, linear to min_ratio 0.1: steps 0-21",
         {"warmup_steps": 3, "max_steps": 20, "decay": "linear", "min_ratio": 0.1}, steps(22)),
        ("no warmup, max_steps 10, cosine to min_ratio 0.2: steps 0-11",
         {"warmup_steps": 0, "max_steps": 10, "min_ratio": 0.2}, steps(12)),
        ("warmup 2, max_steps 10, constant: steps 0-11",
         {"warmup_steps": 2, "max_steps": 10, "decay": "constant"}, steps(12)),
        ("warmup 4, a time budget of 10 s alone, 0.5 s a step: steps 0-24",
         {"warmup_steps": 4, "seconds": 10.0}, steps(25, 0.5)),
        ("warmup 2, max_steps 40 and 10 s, 0.4 s a step, linear: the clock ends first",
         {"warmup_steps": 2, "max_steps": 40, "seconds": 10.0, "decay": "linear"},
         steps(30, 0.4)),
        ("no warmup, a time budget already spent (seconds 0), min_ratio 0.2: steps 0-3",
         {"warmup_steps": 0, "seconds": 0.0, "min_ratio": 0.2}, steps(4, 1.0)),
        ("warmup 5 = max_steps 5 (no steps left to decay over): steps 0-7",
         {"warmup_steps": 5, "max_steps": 5}, steps(8)),
    ]  # fmt: skip
    return [Case(label, (settings, points)) for label, settings, points in table]


# ----------------------------------------------------------------------------------------------
# 2. Restoring every random number generator


def _draw(torch: Any) -> dict[str, Any]:
    """The next numbers of every generator a run uses (torch's where it is installed)."""
    drawn: dict[str, Any] = {
        "random.random() x3": [random.random() for _ in range(3)],
        "random.gauss(0, 1) x3": [random.gauss(0, 1) for _ in range(3)],
        "np.random.rand(4)": np.random.rand(4),
        "np.random.randn(3)": np.random.randn(3),
    }
    if torch is not None:
        drawn["torch.rand(4)"] = torch.rand(4)
        drawn["torch.randn(3)"] = torch.randn(3)
    return drawn


def _restore_and_draw(function: Callable[[dict], None], args: tuple) -> dict[str, Any]:
    """Draw `normal_draws` Gaussians from each generator, save every state (through JSON, as a
    checkpoint's meta.json holds it), scramble them all, restore with `function`, draw again."""
    try:
        import torch
    except ImportError:  # a numpy-only install: Python's and numpy's generators are checked
        torch = None
    (normal_draws,) = args
    for _ in range(normal_draws):  # an odd count leaves a second Gaussian cached, to be saved
        random.gauss(0, 1)
        np.random.randn()
        if torch is not None:
            torch.randn(1)
    saved = json.loads(json.dumps(rng_state()))
    seed_everything(987_654)  # scrambled: only a real restore brings the old numbers back
    _draw(torch)
    function(saved)
    return _draw(torch)


def _rng_cases() -> list[Case]:
    # torch imported before the check seeds the generators, so that it seeds torch's too
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    return [
        Case("states saved right after seeding", (0,), seed=0),
        Case("states saved after 1 Gaussian draw (a second one is cached)", (1,), seed=1),
        Case("states saved after 2 Gaussian draws (nothing cached)", (2,), seed=2),
        Case("states saved after 5 Gaussian draws", (5,), seed=12345),
    ]


# ----------------------------------------------------------------------------------------------
# 3. Keeping a download only if its checksum matches

URL = "https://example.org/data.bin"


def _finish_in_a_folder(function: Callable[..., None], args: tuple) -> dict[str, Any]:
    """Call `function(tmp, dest, expected, URL, algorithm)` in a scratch folder holding the
    downloaded `data.bin.part-tmp` (and an older `data.bin` where the case has one); returns
    whether it refused the file (and named both checksums) and every file's bytes after it."""
    content, expected, algorithm, older = args
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        tmp, dest = folder / "data.bin.part-tmp", folder / "data.bin"
        tmp.write_bytes(content)
        if older is not None:
            dest.write_bytes(older)
        result: dict[str, Any] = {"raised": None, "its message names both checksums": None}
        try:
            function(tmp, dest, expected, URL, algorithm)
        except DatasetError as error:
            actual = hashlib.new(algorithm, content).hexdigest()
            result["raised"] = "DatasetError"
            named = expected is not None and expected in str(error) and actual in str(error)
            result["its message names both checksums"] = named
        for path in (dest, tmp):
            result[f"{path.name} afterwards"] = path.read_bytes() if path.exists() else None
        return result


def _finish_cases() -> list[Case]:
    data = b"name,label\nthe cat sat,1\nthe dog ran,0\n"
    corrupted = data[:5] + b"X" + data[6:]  # one byte changed in transit

    def digest(content: bytes, algorithm: str = "sha256") -> str:
        return hashlib.new(algorithm, content).hexdigest()

    return [
        Case("a good file, its sha256 matches", (data, digest(data), "sha256", None)),
        Case("one byte changed in transit (sha256)", (corrupted, digest(data), "sha256", None)),
        Case("no checksum known (expected None)", (data, None, "sha256", None)),
        Case("a good file, checked with md5", (data, digest(data, "md5"), "md5", None)),
        Case("a corrupted file while an older good copy is in place",
             (corrupted, digest(data), "sha256", b"the older copy\n")),
        Case("an empty file (sha256 of no bytes)", (b"", digest(b""), "sha256", None)),
    ]  # fmt: skip


EXERCISES = [
    Exercise(
        slug="lr_schedule",
        title="the learning-rate schedule: warmup, then a decay to the budget's end",
        reference=lr_factor,
        cases=_schedule_cases,
        call=_schedule_curve,
        imports="import math\n\nfrom shared.training import Decay\n",
        docstring="""
The learning rate over its peak at `step` (from 0), after `elapsed` seconds of training.

Warmup: while step < warmup_steps the factor rises linearly, from 1 / warmup_steps at
step 0 to exactly 1.0 at step warmup_steps - 1 (so no step trains with a rate of 0).

Then the decay from 1 to `min_ratio`. How far along it is, `done` in [0, 1], is the larger
of
  - the steps' progress, (step - warmup_steps) / (max_steps - warmup_steps), where
    max_steps > 0 (a denominator below 1 counts as 1);
  - the clock's progress, elapsed / seconds, where seconds is not None (a budget already
    spent, seconds <= 0, means done = 1);
capped at 1. The shape at `done`: "cosine" 0.5 * (1 + cos(pi * done)), "linear"
1 - done, "constant" 1. The factor is min_ratio + (1 - min_ratio) * shape.

A time budget ends on a fast machine or a slow one, so its decay follows the clock; a step
budget alone makes every step's rate a function of the step, so a resumed run repeats it.""",
        hint="""Warmup first: return (step + 1) / warmup_steps while step < warmup_steps.
Then done = max of the step progress and the time progress (each only where its budget is set),
min(done, 1.0); pick the shape by `decay`, then scale it into [min_ratio, 1].""",
    ),
    Exercise(
        slug="rng_restore",
        title="restore every random number generator from a saved state",
        reference=set_rng_state,
        cases=_rng_cases,
        call=_restore_and_draw,
        imports="import random\nimport sys\nfrom typing import Any\n\nimport numpy as np\n",
        docstring="""
Restore what `rng_state()` returned, after a trip through JSON (tuples become lists):

    state["python"]      [version, [625 ints], gauss_next]: random.getstate()
    state["numpy"]       [kind, [624 ints], pos, has_gauss, cached_gaussian]:
                         np.random.get_state()
    state["torch_cpu"]   [5056 ints]: the bytes of torch.get_rng_state(), if torch was
                         imported when the state was saved
    state["torch_cuda"]  [one such list per GPU], if CUDA was in use

Afterwards random, np.random and torch draw exactly the numbers they would have drawn
when the state was saved. Touch torch only if it is imported already
(sys.modules.get("torch")): a numpy-only stage never pays for importing it.""",
        hint="""Give each library its state back in the exact form it gave it out.
random wants tuples (the 625 ints too); numpy a uint32 array of the keys and all five fields,
the cached Gaussian included; torch a uint8 tensor.""",
    ),
    Exercise(
        slug="verified_download",
        title="keep a downloaded file only if its checksum matches",
        reference=_finish,
        function="finish",
        cases=_finish_cases,
        call=_finish_in_a_folder,
        imports="import os\nfrom pathlib import Path\n\nfrom shared.download import digest_of\n"
        "from shared.errors import DatasetError\n",
        docstring="""
`tmp`: the file just downloaded (or copied) from `origin`, beside its destination `dest`.

If `expected` is a hex digest and the file's (`digest_of(tmp, algorithm)`, algorithm
"sha256" or "md5") differs: delete `tmp`, leave `dest` as it was, and raise DatasetError
with a message that names the file and both digests, expected and actual. Otherwise (it
matches, or expected is None: nothing to check against) move `tmp` over `dest` with one
rename (os.replace), so that a reader sees the old file or the new one, never half of one.""",
        hint="""Check before you move: on a mismatch delete tmp and raise, else os.replace.
The digest is digest_of(tmp, algorithm); skip the comparison when expected is None.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package shared exercise ...` (see shared/learn.py)."""
    return exercise_command("shared", EXERCISES, argv)
